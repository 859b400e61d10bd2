// Two callbox nodes, one Redis (docs/cluster.md): alice's page reaches node A through a TCP
// forwarder (standing in for DNS or an L4 balancer), bob's page talks to node B. They see each
// other, chat, and place a relay-only call that goes browser -> A's relay -> B's relay ->
// browser. Then node A is SIGKILLed and the forwarder points at B: alice's page reconnects
// through it, takes "alice" over on B with her token, gets B's TURN credentials, and the same
// call (the same RTCPeerConnection, never hung up) recovers by ICE restart, still relayed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { withDiagnostics } from '../lib/env.js';
import { startCluster } from '../lib/cluster.js';
import {
  login, waitFor, waitForUser, establishCall, waitForFrames, framesDecoded, snapshot, hangUp, waitForPhase,
} from '../lib/browser.js';

let cluster;
before(async () => {
  cluster = await startCluster({ nodes: 2 });
});
after(async () => cluster?.close());

const signalingState = (page) => page.evaluate(() => window.callbox.signalingState);
const turnUrls = (page) => page.evaluate(() =>
  window.callbox.iceServers.flatMap((s) => (Array.isArray(s.urls) ? s.urls : [s.urls])));

async function chatLine(page, text) {
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('chat-input').press('Enter');
}

const chatLines = (page) => page.evaluate(() =>
  [...document.querySelectorAll('#chat-log .chat-line')].map((li) => ({
    who: li.querySelector('.who').textContent,
    text: li.querySelector('.text').textContent,
  })));

/** The page's selected pair is a relay allocated by `node`'s TURN (its address, its range). */
async function assertRelayedThrough(page, node, who) {
  const s = await snapshot(page);
  assert.equal(s.iceTransportPolicy, 'relay', `${who}: relay-only`);
  assert.equal(s.stats.pair.localType, 'relay', `${who}: selected pair is relayed`);
  assert.equal(s.stats.pair.localAddress, node.host, `${who}: relay on ${node.id} (${node.host})`);
  const port = s.stats.pair.localPort;
  assert.ok(port >= node.relayPortMin && port <= node.relayPortMax,
    `${who}: relay port ${port} in ${node.id}'s range ${node.relayPortMin}-${node.relayPortMax}`);
  return s;
}

test('a relayed call between two nodes survives the SIGKILL of one: reconnect, reclaim, ICE restart', { timeout: 100000 }, async () => {
  await withDiagnostics(cluster, async () => {
    const [nodeA, nodeB] = cluster.nodes;
    const alice = await cluster.open(new URL('/?relay=1', cluster.forwarder.url).href);
    const bob = await cluster.open(new URL('/?relay=1', nodeB.url).href);
    await login(alice, 'alice');
    await login(bob, 'bob');
    await waitForUser(alice, 'bob');
    await waitForUser(bob, 'alice');

    await chatLine(alice, 'hello from node a');
    const line = await waitFor('bob gets alice\'s chat from the other node', async () =>
      (await chatLines(bob)).find((l) => l.text === 'hello from node a'));
    assert.equal(line.who, 'alice');

    // Each page is handed its own node's TURN.
    assert.ok((await turnUrls(alice)).some((u) => u.startsWith(`turn:${nodeA.host}:${nodeA.turnPort}`)));
    assert.ok((await turnUrls(bob)).some((u) => u.startsWith(`turn:${nodeB.host}:${nodeB.turnPort}`)));
    await establishCall(alice, bob, 'bob', 'alice', { timeoutMs: 30000 });
    await assertRelayedThrough(alice, nodeA, 'alice');
    await assertRelayedThrough(bob, nodeB, 'bob');
    const credsBefore = await alice.evaluate(() => window.callbox.iceServers[0]?.username);
    // Marks this call's peer connections: after the failover they must be the same objects.
    for (const page of [alice, bob]) await page.evaluate(() => { window.callbox.pc.__firstCall = true; });

    const killedAt = Date.now();
    await nodeA.kill();
    cluster.forwarder.setTarget(nodeB.target());

    await waitFor('alice online again, on node B, with B\'s TURN credentials', async () =>
      (await signalingState(alice)) === 'online'
      && (await turnUrls(alice)).some((u) => u.startsWith(`turn:${nodeB.host}:${nodeB.turnPort}`))
      && (await alice.evaluate(() => window.callbox.iceServers[0]?.username)) !== credsBefore,
    { timeoutMs: 20000 });
    const reclaimedMs = Date.now() - killedAt;
    assert.equal(await alice.evaluate(() => window.callbox.me), 'alice', 'alice kept her name');
    await waitForUser(bob, 'alice');

    await waitFor('connected again on both sides after an ICE restart', async () =>
      (await alice.evaluate(() => window.callbox.pc?.connectionState)) === 'connected'
      && (await bob.evaluate(() => window.callbox.pc?.connectionState)) === 'connected'
      && (await alice.evaluate(() => window.callbox.call.restarts))
        + (await bob.evaluate(() => window.callbox.call.restarts)) > 0,
    { timeoutMs: 45000, intervalMs: 500 });
    const recoveredMs = Date.now() - killedAt;
    for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
      assert.equal(await page.evaluate(() => window.callbox.phase), 'in-call', `${who} still in the call`);
      assert.equal(await page.evaluate(() => window.callbox.pc.__firstCall), true, `${who}: the same call, not a new one`);
    }
    // Both relays are node B's now: alice's new allocation and bob's.
    await assertRelayedThrough(alice, nodeB, 'alice');
    await assertRelayedThrough(bob, nodeB, 'bob');
    const before = { alice: await framesDecoded(alice), bob: await framesDecoded(bob) };
    await waitForFrames(alice, { min: before.alice + 1 });
    await waitForFrames(bob, { min: before.bob + 1 });
    console.log(`failover: alice reclaimed her name on node B ${reclaimedMs} ms after the kill, media back ${recoveredMs} ms after it`);

    // Signaling goes through node B now: a hang-up reaches the other side.
    await hangUp(bob);
    await waitForPhase(alice, 'idle');
  });
});
