// Without a usable camera or microphone the page explains why in words (no alert()) and the
// call still happens receive-only. The browser's getUserMedia is made to fail the way real
// devices do (DOMException names), before the page's own scripts run.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { login, call, accept, waitForConnected, waitForFrames, snapshot, sleep, hangUp, waitForPhase } from '../lib/browser.js';

let env;
before(async () => {
  env = await startEnv();
});
after(async () => env?.close());

/** Opens the page in a context whose getUserMedia always fails with `errorName`. */
async function openWithoutDevices(errorName) {
  const page = await env.open('/');
  await page.context().addInitScript((name) => {
    navigator.mediaDevices.getUserMedia = async () => {
      throw new DOMException('simulated by the test', name);
    };
  }, errorName);
  await page.reload({ waitUntil: 'load' });
  page.on('dialog', (d) => {
    page.sawDialog = true;
    d.dismiss().catch(() => {});
  });
  return page;
}

test('with no camera or microphone the callee is told why and still receives the call', async () => {
  await withDiagnostics(env, async () => {
    const alice = await env.open('/');
    const bob = await openWithoutDevices('NotFoundError');
    await login(alice, 'alice');
    await login(bob, 'bob');
    await call(alice, 'bob');
    await accept(bob, { from: 'alice' });
    assert.match(await bob.getByTestId('notice').textContent(), /No camera or microphone was found.*receive-only/);
    await Promise.all([waitForConnected(alice), waitForConnected(bob)]);
    await waitForFrames(bob);
    await sleep(1000);
    const aliceSide = await snapshot(alice);
    assert.equal(aliceSide.stats.inbound.video?.framesDecoded ?? 0, 0, 'bob sends no video');
    assert.equal(bob.sawDialog, undefined, 'no alert() or other dialog');
    await hangUp(bob);
    await waitForPhase(alice, 'idle');
  });
});

test('a denied permission is explained in the page and the caller still sees the callee', async () => {
  await withDiagnostics(env, async () => {
    const carol = await openWithoutDevices('NotAllowedError');
    const dave = await env.open('/');
    await login(carol, 'carol');
    await login(dave, 'dave');
    await call(carol, 'dave');
    assert.match(await carol.getByTestId('notice').textContent(), /Permission to use your camera or microphone was denied/);
    await accept(dave, { from: 'carol' });
    await Promise.all([waitForConnected(carol), waitForConnected(dave)]);
    await waitForFrames(carol);
    assert.equal(carol.sawDialog, undefined);
    await hangUp(dave);
    await waitForPhase(carol, 'idle');
  });
});

test('a busy device is explained in plain words', async () => {
  await withDiagnostics(env, async () => {
    const erin = await openWithoutDevices('NotReadableError');
    const frank = await env.open('/');
    await login(erin, 'erin');
    await login(frank, 'frank');
    await call(frank, 'erin');
    await accept(erin, { from: 'frank' });
    assert.match(await erin.getByTestId('notice').textContent(), /busy \(another app may be using it\)/);
    await waitForFrames(erin);
    await hangUp(erin);
    await waitForPhase(frank, 'idle');
  });
});
