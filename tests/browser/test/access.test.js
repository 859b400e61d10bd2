// The page works at phone width and with the keyboard alone: log in, call and answer without a
// mouse, with the ring putting focus on Accept; nothing overflows a 360 px wide screen.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { openPage, waitFor, waitForConnected, waitForFrames, waitForPhase, screenshot } from '../lib/browser.js';

let env;
before(async () => {
  env = await startEnv();
});
after(async () => env?.close());

const phone = { width: 360, height: 740 };

async function keyboardLogin(page, name) {
  // The form puts focus in the name field, so a person can just type.
  await waitFor('focus in the name field', () => page.evaluate(() => document.activeElement?.id === 'login-name'));
  await page.keyboard.type(name);
  await page.keyboard.press('Enter');
  await waitFor(`${name} logged in`, () => page.evaluate(() => window.callbox.me));
}

/** Tabs until the focused element matches `selector` (bounded), then returns true. */
async function tabTo(page, selector, maxTabs = 40) {
  for (let i = 0; i < maxTabs; i += 1) {
    await page.keyboard.press('Tab');
    if (await page.evaluate((s) => document.activeElement?.matches(s), selector)) return true;
  }
  return false;
}

test('keyboard only at phone width: log in, call, answer, hang up', async () => {
  await withDiagnostics(env, async () => {
    const alice = await openPage(env.browser, env.server.url, { viewport: phone });
    const bob = await openPage(env.browser, env.server.url, { viewport: phone });
    env.pages.push(alice, bob);
    await keyboardLogin(alice, 'alice');
    await keyboardLogin(bob, 'bob');
    for (const page of [alice, bob]) {
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `no horizontal scrolling at 360 px (overflow ${overflow})`);
    }
    await alice.locator('[data-user="bob"]').waitFor();
    assert.ok(await tabTo(alice, '[data-user="bob"]'), 'the callee is reachable with Tab');
    await alice.keyboard.press('Enter');
    await bob.getByTestId('incoming').waitFor();
    assert.equal(await bob.evaluate(() => document.activeElement?.id), 'accept-call', 'ringing focuses Accept');
    await bob.keyboard.press('Enter');
    await Promise.all([waitForConnected(alice), waitForConnected(bob)]);
    await waitForFrames(alice);
    await screenshot(bob, 'phone-bob');
    assert.ok(await tabTo(bob, '#hangup'), 'Hang up is reachable with Tab');
    await bob.keyboard.press('Enter');
    await waitForPhase(alice, 'idle');
  });
});

test('controls have accessible names', async () => {
  await withDiagnostics(env, async () => {
    const page = await env.open('/');
    const unnamed = await page.evaluate(() =>
      [...document.querySelectorAll('button, input, select, video')]
        .filter((e) => {
          const label = e.getAttribute('aria-label') || e.textContent.trim() || (e.labels && e.labels.length && e.labels[0].textContent.trim());
          return !label;
        })
        .map((e) => e.id || e.outerHTML.slice(0, 60)),
    );
    assert.deepEqual(unnamed, []);
  });
});
