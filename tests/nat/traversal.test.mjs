// Two browsers behind two symmetric NATs call each other through callbox alone (issue 5).
// callbox runs in the public namespace; Chromium runs in each client namespace, opens callbox's
// own page, logs in as alice and bob through the UI, alice calls, bob accepts. The test reads
// what happened from inside the page (instrument.js) and from the page's getStats.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { addr, ns, netns, stopAll } from './lib/topology.mjs';
import { startCallbox } from './lib/callbox.mjs';
import {
  stage, closeBrowsers, call as callIn, waitForMedia, pathOf, assertPageSaysRelayed,
  assertRelayedByCallbox, screenshots, report, withDiagnostics, watchWithoutRelay,
  assertRelayCarriedMedia, printResults,
} from './lib/calls.mjs';

// Variants whose call connected through the relay, for the byte-count check at the end.
const relayed = [];
const call = (variant, options) => callIn(variant, [ns.clientA, ns.clientB], options);
const relayAddrs = [addr.callbox];

before(async () => {
  netns('down');
  netns('up');
  stage.callbox = await startCallbox(ns.pub, addr.callbox);
});

after(async () => {
  await closeBrowsers();
  await stage.callbox?.stop();
  await stopAll();
  netns('down');
  printResults('NAT traversal summary');
});

test('alice and bob behind symmetric NATs call through callbox relay over UDP', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    const { a, b, clickedAt } = await call('udp');
    const media = await waitForMedia(a, b, clickedAt);
    const localRelays = assertRelayedByCallbox(media.snaps, relayAddrs);
    for (const s of localRelays) assert.equal(s.selected.local.relayProtocol, 'udp', pathOf(s));
    await assertPageSaysRelayed(a, b);
    await screenshots('udp', a, b);
    report('TURN/UDP', media);
    relayed.push('udp');
  }));

test('with TURN withheld (STUN only) the call cannot connect although srflx candidates were exchanged', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    const { a, b } = await call('stun', { policy: 'stun-only' });
    const sides = ['alice', 'bob'];
    // Until one side's ICE has failed and then 2 s more, at most 40 s. The client restarts ICE
    // as soon as a connection fails, which also restarts the other side's checks, so "failed"
    // is required of one side and "never connected" of both.
    const { snaps, failedAt, srflxChecks } = await watchWithoutRelay(a, b, 40_000);
    assert.ok(failedAt, `ICE failed on at least one side within 40 s: ${JSON.stringify(snaps.map((s) => s?.history))}`);
    snaps.forEach((s, i) => {
      assert.ok(s, `${sides[i]} made a peer connection`);
      assert.ok(s.iceServerSchemes.some((x) => x.startsWith('turn')), `callbox offered TURN, the test withheld it: ${s.iceServerSchemes}`);
      assert.ok(s.gathered.includes('srflx'), `${sides[i]} gathered a srflx candidate from callbox's STUN: ${s.gathered}`);
      assert.ok(!s.gathered.includes('relay'), `${sides[i]} had no relay candidate (TURN withheld): ${s.gathered}`);
      assert.ok(s.received.includes('srflx'), `${sides[i]} received the peer's srflx candidate: ${s.received}`);
      assert.ok(!s.history.includes('connection:connected'), `${sides[i]} must never connect without the relay: ${s.history}`);
      const tried = [...srflxChecks[i].values()].filter((p) => p.requestsSent > 0);
      assert.ok(tried.length > 0, `${sides[i]} sent connectivity checks to the peer's srflx`);
      assert.ok(tried.every((p) => p.responsesReceived === 0), `${sides[i]}: no check to a srflx got an answer: ${JSON.stringify(tried)}`);
    });
    const checks = [...srflxChecks[0].values(), ...srflxChecks[1].values()].reduce((n, p) => n + p.requestsSent, 0);
    const line = `STUN only: no connection; srflx candidates gathered and exchanged on both sides, ${checks} checks to them unanswered, ICE failed`;
    stage.results.push(line);
    console.log(line);
  }));

test('with UDP to 3478 blocked at both routers the call connects over TURN/TCP or TURN/TLS', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    netns('block-udp-turn');
    try {
      const { a, b, clickedAt } = await call('tcp');
      const media = await waitForMedia(a, b, clickedAt);
      const localRelays = assertRelayedByCallbox(media.snaps, relayAddrs);
      for (const s of localRelays) {
        assert.ok(['tcp', 'tls'].includes(s.selected.local.relayProtocol), `relay reached over TCP or TLS: ${pathOf(s)}`);
      }
      await assertPageSaysRelayed(a, b);
      await screenshots('tcp', a, b);
      report('TURN/TCP (UDP 3478 blocked)', media);
      relayed.push('tcp');
    } finally {
      netns('open');
    }
  }));

test('when only TCP to port 443 gets out, page, signaling and TURN over TLS all share 443', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    netns('only-tcp', '443');
    try {
      const { a, b, clickedAt } = await call('tls');
      const media = await waitForMedia(a, b, clickedAt);
      assertRelayedByCallbox(media.snaps, relayAddrs);
      media.snaps.forEach((s, i) => {
        const l = s.selected.local;
        assert.equal(l.type, 'relay', `${['alice', 'bob'][i]} must use its own allocation: ${pathOf(s)}`);
        assert.equal(l.relayProtocol, 'tls', `${['alice', 'bob'][i]} reached TURN over TLS: ${pathOf(s)}`);
        if (l.url) assert.match(l.url, /^turns:.*:443\b/, `allocation made on the HTTPS port: ${l.url}`);
      });
      await assertPageSaysRelayed(a, b);
      await screenshots('tls443', a, b);
      report('TURN/TLS on 443 only', media);
      relayed.push('tls');
    } finally {
      netns('open');
    }
  }));

test("callbox's own relay carried the calls: its allocation summaries count the media bytes", { timeout: 90_000 }, async (t) => {
  if (relayed.length === 0) return t.skip('no relayed call connected');
  await assertRelayCarriedMedia(relayed);
});
