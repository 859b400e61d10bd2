// The page follows the limits config.toml sets (issue 8): a server with a 12-character name
// limit and a 50-character chat limit says so in its login replies, and the page's inputs and
// messages follow, instead of the defaults 32 and 2000.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { login, loginError } from '../lib/browser.js';

let env;

before(async () => {
  env = await startEnv({ server: { extra: '[signaling]\nname_max_chars = 12\nchat_max_chars = 50\n' } });
});
after(async () => env?.close());

test('name and chat inputs follow the limits from the login reply', async () => {
  await withDiagnostics(env, async () => {
    const page = await env.open('/');
    // The first reply, a refusal, already carries the limits.
    assert.match(await loginError(page, 'a'.repeat(13)), /1 to 12 characters/);
    assert.equal(await page.getByTestId('login-name').getAttribute('maxlength'), '12');
    await page.getByTestId('login-error').evaluate((e) => { e.textContent = ''; });
    await login(page, 'twelve-chars');
    assert.equal(await page.getByTestId('chat-input').getAttribute('maxlength'), '50');
    // Past the input's own limit (e.g. pasted by a script), the page explains instead of sending.
    await page.getByTestId('chat-input').evaluate((input) => {
      input.maxLength = 1000;
      input.value = 'x'.repeat(51);
    });
    await page.getByTestId('chat-input').press('Enter');
    assert.equal(await page.locator('#chat-error').textContent(), 'Messages are at most 50 characters.');
    assert.equal(await page.locator('#chat-log .chat-line').count(), 0);
  });
});
