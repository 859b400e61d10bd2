// Logging in: errors are shown inline in the form, rooms are separate, and a reload reclaims
// the same name with the saved token instead of being locked out by the stale connection.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { login, loginError, waitFor, waitForUser } from '../lib/browser.js';

let env;
before(async () => {
  env = await startEnv({
    server: { extra: '[[rooms]]\nname = "secret"\naccess_code = "open-sesame"\n' },
  });
});
after(async () => env?.close());

test('a taken name is refused inline, and another name works', async () => {
  await withDiagnostics(env, async () => {
    const first = await env.open('/');
    await login(first, 'alice');
    const second = await env.open('/');
    const error = await loginError(second, 'ALICE');
    assert.match(error, /already taken/);
    assert.equal(await second.getByTestId('login-name').isVisible(), true);
    await login(second, 'alicia');
    await waitForUser(first, 'alicia');
  });
});

test('an invalid name is explained before anything is sent', async () => {
  await withDiagnostics(env, async () => {
    const page = await env.open('/');
    // The length limit is learnt from the server's login reply (test/limits.test.js).
    assert.match(await loginError(page, '   '), /no control or invisible characters/);
    await page.getByTestId('login-error').evaluate((e) => { e.textContent = ''; });
    assert.match(await loginError(page, 'tab\there'), /no control or invisible characters/);
  });
});

test('a room with an access code refuses a wrong code and admits the right one', async () => {
  await withDiagnostics(env, async () => {
    const page = await env.open('/r/secret');
    assert.equal(await page.evaluate(() => window.callbox.room), 'secret');
    assert.match(await loginError(page, 'dave', { accessCode: 'wrong' }), /Wrong access code/);
    await page.getByTestId('login-error').evaluate((e) => { e.textContent = ''; });
    await login(page, 'dave', { accessCode: 'open-sesame' });
    // Rooms are separate: the lobby's alice is not listed here.
    await waitForUser(page, 'dave');
    assert.equal(await page.locator('[data-user="alice"]').count(), 0);
  });
});

test('a reload logs straight back in and reclaims the same name', async () => {
  await withDiagnostics(env, async () => {
    const watcher = await env.open('/');
    await login(watcher, 'watcher');
    const page = await env.open('/');
    await login(page, 'erin');
    await waitForUser(watcher, 'erin');
    await page.reload({ waitUntil: 'load' });
    await waitFor('erin back online after reload', async () =>
      (await page.evaluate(() => [window.callbox.me, window.callbox.signalingState])).join() === 'erin,online',
    );
    assert.equal(await page.getByTestId('me-name').textContent(), 'erin');
    assert.equal(await page.getByTestId('login-name').isVisible(), false);
    await waitForUser(watcher, 'erin');
    const names = await watcher.evaluate(() => [...document.querySelectorAll('#user-list [data-user]')].map((b) => b.dataset.user));
    assert.deepEqual(names.filter((n) => n.toLowerCase().startsWith('erin')), ['erin']);
  });
});

test('a duplicated tab takes the name over with the token; the old tab stops instead of fighting', async () => {
  await withDiagnostics(env, async () => {
    const watcher = await env.open('/');
    await login(watcher, 'watcher2');
    const old = await env.open('/');
    await login(old, 'gina');
    // A duplicated tab starts with a copy of the original's sessionStorage.
    const saved = await old.evaluate(() => JSON.stringify(Object.entries(sessionStorage)));
    const dup = await env.open('/');
    await dup.evaluate((entries) => {
      for (const [k, v] of JSON.parse(entries)) sessionStorage.setItem(k, v);
    }, saved);
    await dup.reload({ waitUntil: 'load' });
    await waitFor('the duplicate is gina', async () =>
      (await dup.evaluate(() => [window.callbox.me, window.callbox.signalingState])).join() === 'gina,online');
    await waitFor('the old tab is signed out', async () =>
      (await old.evaluate(() => window.callbox.signalingState)) === 'replaced');
    assert.match(await old.getByTestId('login-error').textContent(), /Signed in elsewhere/);
    await new Promise((r) => setTimeout(r, 3000));
    assert.equal(await old.evaluate(() => window.callbox.signalingState), 'replaced', 'no reconnect after 4001');
    assert.equal(await dup.evaluate(() => window.callbox.signalingState), 'online');
    const names = await watcher.evaluate(() => [...document.querySelectorAll('#user-list [data-user]')].map((b) => b.dataset.user));
    assert.deepEqual(names.filter((n) => n.startsWith('gina')), ['gina']);
  });
});
