// Room chat between two browsers: both directions, sender and time shown, and text that looks
// like HTML is shown as text (never parsed), so nobody can inject markup or script.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { login, waitFor, waitForUser } from '../lib/browser.js';

let env;
let alice;
let bob;

before(async () => {
  env = await startEnv();
  [alice, bob] = await env.loggedIn('alice', 'bob');
  await waitForUser(alice, 'bob');
});
after(async () => env?.close());

async function send(page, text) {
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('chat-input').press('Enter');
}

async function lines(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('#chat-log .chat-line')].map((li) => ({
      who: li.querySelector('.who').textContent,
      text: li.querySelector('.text').textContent,
      time: li.querySelector('time')?.getAttribute('datetime') ?? null,
    })),
  );
}

test('chat goes both ways with sender and time', async () => {
  await withDiagnostics(env, async () => {
    await send(alice, 'hello bob');
    const got = await waitFor('bob gets the line', async () => (await lines(bob)).find((l) => l.text === 'hello bob'));
    assert.equal(got.who, 'alice');
    assert.ok(got.time && !Number.isNaN(Date.parse(got.time)));
    await send(bob, 'hi alice');
    const back = await waitFor('alice gets the reply', async () => (await lines(alice)).find((l) => l.text === 'hi alice'));
    assert.equal(back.who, 'bob');
    assert.equal(await alice.getByTestId('chat-input').inputValue(), '', 'input cleared after sending');
  });
});

test('text that looks like HTML is shown as text and never runs', async () => {
  await withDiagnostics(env, async () => {
    const evil = '<img src=x onerror="window.__pwned=1"><b>bold?</b><script>window.__pwned=2</script>';
    await send(alice, evil);
    const got = await waitFor('bob gets the HTML-looking line', async () => (await lines(bob)).find((l) => l.text === evil));
    assert.equal(got.who, 'alice');
    for (const page of [alice, bob]) {
      assert.equal(await page.locator('#chat-log img, #chat-log b, #chat-log script').count(), 0);
      assert.equal(await page.evaluate(() => window.__pwned), undefined);
    }
  });
});

test('the online list shows names as text too', async () => {
  await withDiagnostics(env, async () => {
    const mallory = await env.open('/');
    await login(mallory, '<i>mallory</i>');
    await waitFor('odd name listed', async () => (await alice.locator('[data-user="<i>mallory</i>"]').count()) === 1);
    assert.equal(await alice.locator('#user-list i').count(), 0);
    await mallory.context().close();
  });
});
