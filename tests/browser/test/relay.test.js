// ?relay=1 forces iceTransportPolicy "relay": the call must then go through callbox's own TURN
// server, with the relay address and port from callbox's configured relay range.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { login, establishCall, snapshot, screenshot } from '../lib/browser.js';

let env;
before(async () => {
  env = await startEnv();
});
after(async () => env?.close());

test('with ?relay=1 the selected candidate pair is a relay allocated by callbox TURN', async () => {
  await withDiagnostics(env, async () => {
    const alice = await env.open('/?relay=1');
    const bob = await env.open('/?relay=1');
    await login(alice, 'alice');
    await login(bob, 'bob');
    const ice = await alice.evaluate(() => window.callbox.iceServers);
    const urls = ice.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls]));
    assert.ok(
      urls.some((u) => u.startsWith('turn:') && u.includes(`:${env.server.turnPort}`)),
      `login reply hands out callbox's TURN (${urls.join(', ')})`,
    );
    const { setupMs } = await establishCall(alice, bob, 'bob', 'alice', { timeoutMs: 30000 });
    console.log(`relayed call setup: ${setupMs} ms`);
    for (const page of [alice, bob]) {
      const s = await snapshot(page);
      assert.equal(s.iceTransportPolicy, 'relay');
      assert.equal(s.stats.pair.localType, 'relay');
      assert.equal(s.stats.relayed, true);
      assert.deepEqual(Object.keys(s.stats.candidates.local), ['relay'], 'relay policy gathers only relay candidates');
      assert.ok(s.stats.candidates.remote.relay > 0, 'the peer\'s relay candidates arrived by trickle');
      assert.equal(s.stats.pair.localAddress, '127.0.0.1');
      const port = s.stats.pair.localPort;
      assert.ok(
        port >= env.server.relayPortMin && port <= env.server.relayPortMax,
        `relay port ${port} is in callbox's relay range ${env.server.relayPortMin}-${env.server.relayPortMax}`,
      );
      assert.equal(await page.getByTestId('call-status').getAttribute('data-path'), 'relay');
      assert.match(await page.getByTestId('call-status').textContent(), /relayed through the server/);
    }
    await screenshot(alice, 'relay-alice');
    await screenshot(bob, 'relay-bob');
  });
});
