// Two browsers behind two symmetric NATs call each other through callbox alone (issue 5).
// callbox runs in the public namespace; Chromium runs in each client namespace, opens callbox's
// own page, logs in as alice and bob through the UI, alice calls, bob accepts. The test reads
// what happened from inside the page (instrument.js) and from the page's getStats.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { addr, natDir, ns, netns, stopAll } from './lib/topology.mjs';
import { launchPair, snapshot } from './lib/browser.mjs';
import { startCallbox } from './lib/callbox.mjs';
import * as driver from './lib/ui.mjs';
import { sleep, waitFor } from './lib/wait.mjs';

const artifacts = path.resolve(natDir, '..', '..', 'test-artifacts', 'nat');

let callbox = null;
let browsers = [];
const results = [];
// Variants whose call connected through the relay, for the byte-count check at the end.
const relayed = [];

async function closeBrowsers() {
  await Promise.all(browsers.map((b) => b.close()));
  browsers = [];
}

before(async () => {
  netns('down');
  netns('up');
  callbox = await startCallbox(ns.pub, addr.callbox);
});

after(async () => {
  await closeBrowsers();
  await callbox?.stop();
  await stopAll();
  netns('down');
  if (results.length) {
    console.log('\nNAT traversal summary:');
    for (const r of results) console.log(`  ${r}`);
  }
});

/** Chromium in each client namespace, on callbox's page, logged in; alice calls, bob accepts. */
async function call(variant, { policy = 'all' } = {}) {
  const [a, b] = await launchPair([ns.clientA, ns.clientB], { policy }, browsers);
  const alice = `alice-${variant}`;
  const bob = `bob-${variant}`;
  await Promise.all([a.page.goto(callbox.url), b.page.goto(callbox.url)]);
  await driver.login(a.page, alice);
  await driver.login(b.page, bob);
  await driver.waitForUser(a.page, bob);
  const clickedAt = Date.now();
  await driver.call(a.page, bob);
  await driver.accept(b.page, { from: alice });
  return { a, b, clickedAt };
}

/**
 * Waits until both sides decode video; returns setup times (click to first decoded frame) and
 * snapshots taken a second later, after checking the frame counts are still growing.
 */
async function waitForMedia(a, b, clickedAt, timeoutMs = 30_000) {
  // One poller per side, so each side's time is its own.
  const firstFrameAt = await Promise.all([a, b].map((side, i) =>
    waitFor(`decoded video frames on ${['alice', 'bob'][i]}'s side`, async () => {
      const s = await snapshot(side.page);
      return s?.framesDecoded > 0 ? Date.now() : { ok: false, seen: brief(s) };
    }, { timeoutMs, everyMs: 50 })));
  const before = await Promise.all([snapshot(a.page), snapshot(b.page)]);
  await sleep(1000);
  const later = await Promise.all([snapshot(a.page), snapshot(b.page)]);
  later.forEach((s, i) => {
    assert.ok(s.framesDecoded > before[i].framesDecoded, `${['alice', 'bob'][i]}: frames still decoded a second later (${before[i].framesDecoded} -> ${s.framesDecoded})`);
  });
  return {
    setupMs: Math.max(...firstFrameAt) - clickedAt,
    perSide: firstFrameAt.map((t) => t - clickedAt),
    snaps: later,
  };
}

const brief = (s) => s && {
  state: s.connectionState,
  frames: s.framesDecoded,
  local: s.selected?.local && `${s.selected.local.type}/${s.selected.local.relayProtocol ?? s.selected.local.protocol}`,
  remote: s.selected?.remote?.type,
  gathered: s.gathered,
  received: s.received,
};

const pathOf = (s) => {
  const l = s.selected.local;
  const r = s.selected.remote;
  const via = l.url ? ` via ${l.url}` : '';
  return `${l.type}${l.relayProtocol ? `(${l.relayProtocol})` : ''} ${l.address || '(address hidden)'}${via} <-> ${r.type} ${r.address || '(address hidden)'}`;
};

/** What the person sees: the page's status line says the call is relayed through the server. */
async function assertPageSaysRelayed(a, b) {
  for (const [name, side] of [['alice', a], ['bob', b]]) {
    await waitFor(`${name}'s page showing a relayed call`, async () => {
      const status = side.page.getByTestId('call-status');
      const path = await status.getAttribute('data-path');
      return path === 'relay' ? true : { ok: false, seen: { path, text: await status.textContent() } };
    }, { timeoutMs: 10_000 });
  }
}

/** The selected pair goes through a relay allocated by callbox, on both sides. */
function assertRelayedByCallbox(snaps) {
  const sides = ['alice', 'bob'];
  snaps.forEach((s, i) => {
    assert.equal(s.connectionState, 'connected', `${sides[i]} connected`);
    assert.ok(s.selected, `${sides[i]} has a selected candidate pair`);
    const { local, remote } = s.selected;
    const viaCallbox = [local, remote].some((c) => c.type === 'relay' && c.address === addr.callbox);
    assert.ok(viaCallbox, `${sides[i]}'s selected pair uses a relay candidate on callbox (${addr.callbox}): ${pathOf(s)}`);
  });
  const localRelays = snaps.filter((s) => s.selected.local.type === 'relay');
  assert.ok(localRelays.length > 0, 'at least one side sends through its own callbox allocation');
  return localRelays;
}

async function screenshots(variant, a, b) {
  fs.mkdirSync(artifacts, { recursive: true });
  await Promise.all([
    a.page.screenshot({ path: path.join(artifacts, `${variant}-alice.png`) }).catch(() => {}),
    b.page.screenshot({ path: path.join(artifacts, `${variant}-bob.png`) }).catch(() => {}),
  ]);
}

function report(variant, media) {
  const line = `${variant}: call setup ${media.setupMs} ms (click Call to first decoded frame; alice ${media.perSide[0]} ms, bob ${media.perSide[1]} ms); alice ${pathOf(media.snaps[0])}; bob ${pathOf(media.snaps[1])}`;
  results.push(line);
  console.log(line);
}

/** On failure, what the pages and callbox said, to tell a NAT problem from an app problem. */
async function withDiagnostics(fn) {
  try {
    await fn();
  } catch (err) {
    const logs = browsers.flatMap((b) => b.log.slice(-40)).join('\n');
    const box = callbox?.output().split('\n').slice(-40).join('\n');
    err.message += `\n--- browser console ---\n${logs}\n--- callbox ---\n${box}`;
    throw err;
  } finally {
    await closeBrowsers();
  }
}

test('alice and bob behind symmetric NATs call through callbox relay over UDP', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    const { a, b, clickedAt } = await call('udp');
    const media = await waitForMedia(a, b, clickedAt);
    const localRelays = assertRelayedByCallbox(media.snaps);
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
    const srflxChecks = [new Map(), new Map()];
    let snaps = [];
    // Until one side's ICE has failed and then 2 s more (a late success would show), at most 40 s.
    // The client restarts ICE as soon as a connection fails, which also restarts the other
    // side's checks, so "failed" is required of one side and "never connected" of both.
    const deadline = Date.now() + 40_000;
    let failedAt = null;
    while (Date.now() < deadline && !(failedAt && Date.now() - failedAt > 2000)) {
      snaps = await Promise.all([snapshot(a.page), snapshot(b.page)]);
      snaps.forEach((s, i) => {
        for (const p of s?.pairs ?? []) {
          if (p.remote === 'srflx' || p.remote === 'prflx') {
            const old = srflxChecks[i].get(p.id);
            if (!old || p.requestsSent >= old.requestsSent) srflxChecks[i].set(p.id, p);
          }
        }
      });
      if (!failedAt && snaps.some((s) => s?.history.includes('connection:failed'))) failedAt = Date.now();
      await sleep(250);
    }
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
    results.push(line);
    console.log(line);
  }));

test('with UDP to 3478 blocked at both routers the call connects over TURN/TCP or TURN/TLS', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    netns('block-udp-turn');
    try {
      const { a, b, clickedAt } = await call('tcp');
      const media = await waitForMedia(a, b, clickedAt);
      const localRelays = assertRelayedByCallbox(media.snaps);
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
      assertRelayedByCallbox(media.snaps);
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
  const box = callbox;
  callbox = null;
  await box.stop(); // SIGTERM: every allocation ends and logs its one summary line
  const summaries = box.output()
    .replace(/\x1b\[[0-9;]*m/g, '')
    .split('\n')
    .filter((l) => l.includes('TURN allocation ended'))
    .map((l) => ({
      user: /user=(\S+)/.exec(l)?.[1] ?? '',
      toPeers: Number(/bytes_to_peers=(\d+)/.exec(l)?.[1] ?? 0),
      fromPeers: Number(/bytes_from_peers=(\d+)/.exec(l)?.[1] ?? 0),
    }));
  for (const variant of relayed) {
    const mine = summaries.filter((s) => s.user === `alice-${variant}` || s.user === `bob-${variant}`);
    const to = mine.reduce((n, s) => n + s.toPeers, 0);
    const from = mine.reduce((n, s) => n + s.fromPeers, 0);
    assert.ok(to > 20_000 && from > 20_000, `${variant}: callbox relayed media both ways, more than ICE checks alone could add up to (to peers ${to} B, from peers ${from} B; ${mine.length} allocations)`);
    results.push(`${variant}: callbox's allocations relayed ${to} B to peers and ${from} B from peers`);
  }
});
