// The call's media path does not depend on the signaling socket: kill callbox (SIGKILL, no
// goodbye) mid-call, start it again on the same port, and the pages reconnect, reclaim their
// names, keep the call, and the video never stops.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { login, establishCall, waitFor, waitForFrames, framesDecoded, hangUp, waitForPhase, waitForUser } from '../lib/browser.js';

let env;
before(async () => {
  env = await startEnv();
});
after(async () => env?.close());

const signalingState = (page) => page.evaluate(() => window.callbox.signalingState);

test('killing and restarting callbox mid-call: pages reconnect, reclaim names, media keeps flowing', { timeout: 90000 }, async () => {
  await withDiagnostics(env, async () => {
    const alice = await env.open('/');
    const bob = await env.open('/');
    await login(alice, 'alice');
    await login(bob, 'bob');
    await establishCall(alice, bob, 'bob', 'alice');

    await env.server.kill();
    await waitFor('both pages notice the server is gone', async () =>
      (await signalingState(alice)) === 'reconnecting' && (await signalingState(bob)) === 'reconnecting');
    // Server down: the call goes on.
    await waitForFrames(alice);
    await waitForFrames(bob);
    assert.equal(await alice.evaluate(() => window.callbox.phase), 'in-call');

    await env.server.start();
    for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
      await waitFor(`${name} online again`, async () => (await signalingState(page)) === 'online', { timeoutMs: 20000 });
      assert.equal(await page.evaluate(() => window.callbox.me), name);
    }
    await waitForUser(alice, 'bob');
    await waitForUser(bob, 'alice');
    const before = await framesDecoded(bob);
    await waitForFrames(bob);
    await waitForFrames(alice);
    assert.ok((await framesDecoded(bob)) > before);
    assert.equal(await bob.evaluate(() => window.callbox.pc.connectionState), 'connected');

    // Signaling works again through the new process: a hang-up reaches the other side.
    await hangUp(alice);
    await waitForPhase(bob, 'idle');
  });
});

test('a relayed call whose TURN server restarts recovers by ICE restart with fresh credentials', { timeout: 120000 }, async () => {
  await withDiagnostics(env, async () => {
    const carol = await env.open('/?relay=1');
    const dave = await env.open('/?relay=1');
    await login(carol, 'carol');
    await login(dave, 'dave');
    await establishCall(carol, dave, 'dave', 'carol', { timeoutMs: 30000 });
    const credsBefore = await carol.evaluate(() => window.callbox.iceServers[0]?.username);

    // Relay allocations die with the process: media must stop, then come back by itself.
    await env.server.kill();
    await env.server.start();
    await waitFor('carol logged in again with new TURN credentials', async () =>
      (await carol.evaluate(() => window.callbox.iceServers[0]?.username)) !== credsBefore
      && (await signalingState(carol)) === 'online', { timeoutMs: 20000 });
    await waitFor('the old path is noticed as broken', async () =>
      (await carol.evaluate(() => window.callbox.pc.connectionState)) !== 'connected', { timeoutMs: 20000 });
    await waitFor('connected again after ICE restart', async () =>
      (await carol.evaluate(() => window.callbox.pc.connectionState)) === 'connected'
      && (await dave.evaluate(() => window.callbox.pc.connectionState)) === 'connected', { timeoutMs: 45000, intervalMs: 500 });
    const s = await carol.evaluate(() => window.callbox.snapshot());
    assert.equal(s.stats.pair.localType, 'relay');
    assert.ok(s.stats.pair.localPort >= env.server.relayPortMin && s.stats.pair.localPort <= env.server.relayPortMax);
    await waitForFrames(carol);
    await waitForFrames(dave);
    assert.ok((await carol.evaluate(() => window.callbox.call.restarts)) + (await dave.evaluate(() => window.callbox.call.restarts)) > 0,
      'an ICE restart happened');
    await hangUp(dave);
    await waitForPhase(carol, 'idle');
  });
});
