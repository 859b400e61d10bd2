// A call between two real Chromium contexts on a real callbox: presence, ringing, connection,
// decoded video both ways, and the ways a call ends.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import {
  waitForUser, establishCall, hangUp, waitForPhase, screenshot, snapshot, waitFor, call, accept,
} from '../lib/browser.js';

let env;
let alice;
let bob;

before(async () => {
  env = await startEnv();
  [alice, bob] = await env.loggedIn('alice', 'bob');
});
after(async () => env?.close());

test('bob sees alice online; alice calls, bob accepts, both connect and decode growing video', async () => {
  await withDiagnostics(env, async () => {
    await waitForUser(bob, 'alice');
    await waitForUser(alice, 'bob');
    const { setupMs } = await establishCall(alice, bob, 'bob', 'alice');
    console.log(`call setup (click to frames on both sides): ${setupMs} ms`);
    for (const [page, peer] of [[alice, 'bob'], [bob, 'alice']]) {
      const status = page.getByTestId('call-status');
      assert.equal(await status.getAttribute('data-state'), 'connected');
      assert.match(await status.textContent(), new RegExp(`${peer}: connected · (direct|relayed)`));
      const s = await snapshot(page);
      assert.equal(s.phase, 'in-call');
      assert.ok(s.stats.inbound.audio.packetsReceived > 0, 'audio arrives too');
    }
    await screenshot(alice, 'call-alice');
    await screenshot(bob, 'call-bob');
  });
});

test('hang-up from the callee ends the call on both sides and releases the camera', async () => {
  await withDiagnostics(env, async () => {
    assert.equal(await alice.evaluate(() => window.callbox.phase), 'in-call');
    const pc = await alice.evaluateHandle(() => window.callbox.pc);
    const localTracks = await alice.evaluateHandle(() => window.callbox.call.localStream.getTracks());
    assert.equal(await localTracks.evaluate((ts) => ts.length), 2, 'camera and microphone were in use');
    await hangUp(bob);
    await waitForPhase(alice, 'idle');
    await waitForPhase(bob, 'idle');
    assert.match(await alice.getByTestId('notice').textContent(), /bob hung up/);
    assert.equal(await pc.evaluate((p) => p.connectionState), 'closed');
    assert.equal(await alice.evaluate(() => document.getElementById('local-video').srcObject), null);
    assert.deepEqual(await localTracks.evaluate((ts) => ts.map((t) => t.readyState)), ['ended', 'ended']);
    assert.equal(await bob.evaluate(() => window.callbox.pc), null);
  });
});

test('hang-up from the caller ends the call on both sides', async () => {
  await withDiagnostics(env, async () => {
    await establishCall(alice, bob, 'bob', 'alice');
    await hangUp(alice);
    await waitForPhase(bob, 'idle');
    await waitForPhase(alice, 'idle');
    assert.match(await bob.getByTestId('notice').textContent(), /alice hung up/);
  });
});

test('bob can call back after a call ended (roles swap)', async () => {
  await withDiagnostics(env, async () => {
    await call(bob, 'alice');
    await accept(alice, { from: 'bob' });
    await waitFor('alice decodes bob', async () => (await snapshot(alice)).stats?.inbound.video?.framesDecoded > 0, { timeoutMs: 20000 });
    await hangUp(bob);
    await waitForPhase(alice, 'idle');
  });
});

test('the caller closing the tab mid-call ends the call for the callee', async () => {
  await withDiagnostics(env, async () => {
    await establishCall(alice, bob, 'bob', 'alice');
    await alice.context().close();
    await waitForPhase(bob, 'idle', { timeoutMs: 10000 });
    assert.match(await bob.getByTestId('notice').textContent(), /alice hung up/);
    await waitFor('alice gone from the list', async () => (await bob.locator('[data-user="alice"]').count()) === 0);
  });
});

test('the page ran under the strict CSP without violations or script errors', async () => {
  const problems = env.pages
    .flatMap((p) => p.consoleLog)
    .filter((line) => /Content Security Policy|pageerror|Uncaught/i.test(line));
  assert.deepEqual(problems, []);
  const csp = (await (await fetch(env.server.url)).headers.get('content-security-policy')) ?? '';
  assert.match(csp, /script-src 'self'/, 'the page is served with the strict CSP this checks against');
});
