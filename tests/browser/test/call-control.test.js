// Ringing outcomes the caller must be told about: declined, busy, cancelled, unanswered, and
// both people calling each other at the same moment.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import {
  call, accept, decline, waitForRinging, waitForPhase, establishCall, hangUp, waitFor,
  waitForConnected, waitForFrames, waitForUser, sleep, callEachOtherAtOnce,
} from '../lib/browser.js';

let env;
let alice;
let bob;
let carol;

before(async () => {
  env = await startEnv();
  [alice, bob, carol] = await env.loggedIn('alice', 'bob', 'carol');
});
after(async () => env?.close());

const notice = (page) => page.getByTestId('notice').textContent();

test('declining a call tells the caller', async () => {
  await withDiagnostics(env, async () => {
    await call(alice, 'bob');
    assert.equal(await alice.evaluate(() => window.callbox.phase), 'calling');
    await decline(bob, { from: 'alice' });
    await waitForPhase(alice, 'idle');
    assert.match(await notice(alice), /bob declined the call/);
    assert.equal(await bob.evaluate(() => window.callbox.phase), 'idle');
  });
});

test('cancelling before an answer stops the ringing on the callee', async () => {
  await withDiagnostics(env, async () => {
    await call(alice, 'bob');
    await waitForRinging(bob, { from: 'alice' });
    await alice.getByTestId('cancel').click();
    await waitForPhase(bob, 'idle');
    assert.match(await notice(bob), /Missed call from alice/);
    assert.equal(await bob.getByTestId('incoming').isVisible(), false);
  });
});

test('calling someone who is in a call answers busy, and their call goes on', async () => {
  await withDiagnostics(env, async () => {
    await establishCall(alice, bob, 'bob', 'alice');
    // The list disables calling while in a call; carol is idle and may call bob.
    await call(carol, 'bob');
    await waitForPhase(carol, 'idle');
    assert.match(await notice(carol), /bob is busy/);
    assert.equal(await bob.getByTestId('incoming').isVisible(), false, 'bob is not interrupted by a ring');
    await waitForFrames(bob);
    assert.equal(await bob.evaluate(() => window.callbox.phase), 'in-call');
    assert.equal(await alice.locator('[data-user="carol"]').isDisabled(), true, 'no calling out while in a call');
    await hangUp(alice);
    await waitForPhase(bob, 'idle');
  });
});

test('two people calling each other at once end up in one call (glare)', async () => {
  await withDiagnostics(env, async () => {
    await waitForUser(alice, 'bob');
    await waitForUser(bob, 'alice');
    // Both call-requests in flight at once, so both pages are calling (not one ringing).
    await callEachOtherAtOnce(alice, 'alice', bob, 'bob');
    await Promise.all([waitForConnected(alice), waitForConnected(bob)]);
    await Promise.all([waitForFrames(alice), waitForFrames(bob)]);
    assert.equal(await alice.evaluate(() => window.callbox.peer), 'bob');
    assert.equal(await bob.evaluate(() => window.callbox.peer), 'alice');
    await hangUp(bob);
    await waitForPhase(alice, 'idle');
  });
});

test('an unanswered call stops ringing after 30 s and tells the caller', { timeout: 60000 }, async () => {
  await withDiagnostics(env, async () => {
    await call(carol, 'alice');
    await waitForRinging(alice, { from: 'carol' });
    const rangAt = Date.now();
    await waitForPhase(carol, 'idle', { timeoutMs: 40000 });
    const rangFor = Date.now() - rangAt;
    assert.ok(rangFor > 25000, `rang for ${rangFor} ms`);
    assert.match(await notice(carol), /alice did not answer/);
    assert.match(await notice(alice), /Missed call from carol/);
    await sleep(100);
    assert.equal(await alice.getByTestId('incoming').isVisible(), false);
    await waitFor('accept is gone', async () => (await alice.evaluate(() => window.callbox.phase)) === 'idle');
  });
});

test('accepting after a call was answered elsewhere is harmless', async () => {
  // A late accept (bob clicks Accept just as alice cancels) must not leave anyone stuck.
  // Either click may land first: if bob's accept reaches alice before her cancel, her call
  // starts and Cancel gives way to Hang up, which must leave both idle just the same.
  await withDiagnostics(env, async () => {
    await call(alice, 'bob');
    await waitForRinging(bob, { from: 'alice' });
    const [cancelled] = await Promise.all([
      alice.getByTestId('cancel').click({ timeout: 5000 }).then(() => true, () => false),
      bob.getByTestId('accept').click({ timeout: 2000 }).catch(() => {}),
    ]);
    if (!cancelled) await alice.getByTestId('hangup').click();
    await waitForPhase(alice, 'idle');
    await waitForPhase(bob, 'idle', { timeoutMs: 10000 });
  });
});
