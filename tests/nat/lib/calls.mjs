// A call between two browsers on the NAT stage, driven like a person, and what the test files
// assert about it. Shared by traversal.test.mjs (IPv4) and dualstack.test.mjs (IPv6, mixed
// families), each of which runs in its own node process, so the module state below is per file.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { natDir } from './topology.mjs';
import { launchPair, snapshot } from './browser.mjs';
import * as driver from './ui.mjs';
import { sleep, waitFor } from './wait.mjs';

const artifacts = path.resolve(natDir, '..', '..', 'test-artifacts', 'nat');

/** The file's callbox (set by its before hook), open browsers, and summary lines. */
export const stage = { callbox: null, browsers: [], results: [], logins: {}, variant: null };

export async function closeBrowsers() {
  await Promise.all(stage.browsers.map((b) => b.close()));
  stage.browsers = [];
}

/** Chromium in each client namespace, on callbox's page, logged in; alice calls, bob accepts. */
export async function call(variant, [nsA, nsB], { policy = 'all' } = {}) {
  const [a, b] = await launchPair([nsA, nsB], { policy }, stage.browsers);
  stage.variant = variant;
  const alice = `alice-${variant}`;
  const bob = `bob-${variant}`;
  const url = stage.callbox.url;
  await Promise.all([a.page.goto(url), b.page.goto(url)]);
  await driver.login(a.page, alice);
  await driver.login(b.page, bob);
  await driver.waitForUser(a.page, bob);
  const clickedAt = Date.now();
  await driver.call(a.page, bob);
  await driver.accept(b.page, { from: alice });
  return { a, b, clickedAt };
}

export const brief = (s) => s && {
  state: s.connectionState,
  frames: s.framesDecoded,
  local: s.selected?.local && `${s.selected.local.type}/${s.selected.local.relayProtocol ?? s.selected.local.protocol}`,
  remote: s.selected?.remote?.type,
  gathered: s.gatheredList,
  received: s.receivedList,
  pairs: s.pairs?.map((p) => `${p.local}>${p.remote} ${p.state} ${p.requestsSent}/${p.responsesReceived}`),
};

export const pathOf = (s) => {
  const l = s.selected.local;
  const r = s.selected.remote;
  const via = l.url ? ` via ${l.url}` : '';
  return `${l.type}${l.relayProtocol ? `(${l.relayProtocol})` : ''} ${l.address || '(address hidden)'}${via} <-> ${r.type} ${r.address || '(address hidden)'}`;
};

/**
 * Waits until both sides decode video; returns setup times (click to first decoded frame) and
 * snapshots taken a second later, after checking the frame counts are still growing.
 */
export async function waitForMedia(a, b, clickedAt, timeoutMs = 30_000) {
  // One poller per side, so each side's time is its own.
  const firstFrameAt = await Promise.all([a, b].map((side, i) =>
    waitFor(`decoded video frames on ${['alice', 'bob'][i]}'s side`, async () => {
      const s = await snapshot(side.page);
      return s?.framesDecoded > 0 ? Date.now() : { ok: false, seen: brief(s) };
    }, { timeoutMs, everyMs: 50 })));
  const before = await Promise.all([snapshot(a.page), snapshot(b.page)]);
  await sleep(1000);
  const later = await Promise.all([snapshot(a.page), snapshot(b.page)]);
  // This call's TURN login ids, to find its allocations in callbox's log afterwards.
  stage.logins[stage.variant] = later.flatMap((s) => s?.turnLogins ?? []);
  later.forEach((s, i) => {
    assert.ok(s.framesDecoded > before[i].framesDecoded, `${['alice', 'bob'][i]}: frames still decoded a second later (${before[i].framesDecoded} -> ${s.framesDecoded})`);
  });
  return {
    setupMs: Math.max(...firstFrameAt) - clickedAt,
    perSide: firstFrameAt.map((t) => t - clickedAt),
    snaps: later,
  };
}

/** What the person sees: the page's status line says the call is relayed through the server. */
export async function assertPageSaysRelayed(a, b) {
  for (const [name, side] of [['alice', a], ['bob', b]]) {
    await waitFor(`${name}'s page showing a relayed call`, async () => {
      const status = side.page.getByTestId('call-status');
      const p = await status.getAttribute('data-path');
      return p === 'relay' ? true : { ok: false, seen: { path: p, text: await status.textContent() } };
    }, { timeoutMs: 10_000 });
  }
}

/**
 * The selected pair goes through a relay allocated by callbox (on one of `relayAddrs`), on both
 * sides; returns the snapshots of the sides that send through their own allocation.
 */
export function assertRelayedByCallbox(snaps, relayAddrs) {
  const sides = ['alice', 'bob'];
  snaps.forEach((s, i) => {
    assert.equal(s.connectionState, 'connected', `${sides[i]} connected`);
    assert.ok(s.selected, `${sides[i]} has a selected candidate pair`);
    const { local, remote } = s.selected;
    const viaCallbox = [local, remote].some((c) => c.type === 'relay' && relayAddrs.includes(c.address));
    assert.ok(viaCallbox, `${sides[i]}'s selected pair uses a relay candidate on callbox (${relayAddrs.join(' or ')}): ${pathOf(s)}`);
  });
  const localRelays = snaps.filter((s) => s.selected.local.type === 'relay');
  assert.ok(localRelays.length > 0, 'at least one side sends through its own callbox allocation');
  return localRelays;
}

export async function screenshots(variant, a, b) {
  fs.mkdirSync(artifacts, { recursive: true });
  await Promise.all([
    a.page.screenshot({ path: path.join(artifacts, `${variant}-alice.png`) }).catch(() => {}),
    b.page.screenshot({ path: path.join(artifacts, `${variant}-bob.png`) }).catch(() => {}),
  ]);
}

export function report(variant, media) {
  const line = `${variant}: call setup ${media.setupMs} ms (click Call to first decoded frame; alice ${media.perSide[0]} ms, bob ${media.perSide[1]} ms); alice ${pathOf(media.snaps[0])}; bob ${pathOf(media.snaps[1])}`;
  stage.results.push(line);
  console.log(line);
}

/** On failure, what the pages and callbox said, to tell a NAT problem from an app problem. */
export async function withDiagnostics(fn) {
  try {
    await fn();
  } catch (err) {
    const logs = stage.browsers.flatMap((b) => b.log.slice(-40)).join('\n');
    const box = stage.callbox?.output().split('\n').slice(-40).join('\n');
    err.message += `\n--- browser console ---\n${logs}\n--- callbox ---\n${box}`;
    throw err;
  } finally {
    await closeBrowsers();
  }
}

/** The TURN login ids alice's and bob's pages were handed in the call of `variant`. */
export const loginsOf = (variant) => stage.logins[variant] ?? [];

/** callbox's one "TURN allocation ended" line per allocation, parsed. */
export function allocationSummaries(output) {
  return output
    .replace(/\x1b\[[0-9;]*m/g, '')
    .split('\n')
    .filter((l) => l.includes('TURN allocation ended'))
    .map((l) => ({
      user: /user=(\S+)/.exec(l)?.[1] ?? '',
      relay: /relay=(\S+)/.exec(l)?.[1] ?? '',
      toPeers: Number(/bytes_to_peers=(\d+)/.exec(l)?.[1] ?? 0),
      fromPeers: Number(/bytes_from_peers=(\d+)/.exec(l)?.[1] ?? 0),
    }));
}

/**
 * Stops callbox (every allocation ends and logs its summary) and checks that for each relayed
 * variant its users' allocations carried media both ways, far more than ICE checks could.
 * Returns the summaries.
 */
export async function assertRelayCarriedMedia(relayed) {
  const box = stage.callbox;
  stage.callbox = null;
  await box.stop(); // SIGTERM: every allocation ends and logs its one summary line
  const summaries = allocationSummaries(box.output());
  for (const variant of relayed) {
    const mine = summaries.filter((s) => loginsOf(variant).includes(s.user));
    const to = mine.reduce((n, s) => n + s.toPeers, 0);
    const from = mine.reduce((n, s) => n + s.fromPeers, 0);
    assert.ok(to > 20_000 && from > 20_000, `${variant}: callbox relayed media both ways, more than ICE checks alone could add up to (to peers ${to} B, from peers ${from} B; ${mine.length} allocations)`);
    stage.results.push(`${variant}: callbox's allocations relayed ${to} B to peers and ${from} B from peers`);
  }
  return summaries;
}

/** Prints the summary lines of the file's variants. */
export function printResults(title) {
  if (!stage.results.length) return;
  console.log(`\n${title}:`);
  for (const r of stage.results) console.log(`  ${r}`);
}

/**
 * Watches a call whose TURN was withheld: polls both sides every 250 ms until one side's ICE
 * failed and 2 s more passed (a late success would show), or `limitMs`. Keeps the largest check
 * counts seen per pair to a srflx/prflx remote (Chromium drops failed pairs from getStats).
 * Returns { snaps, failedAt, srflxChecks: [Map, Map] }.
 */
export async function watchWithoutRelay(a, b, limitMs) {
  const srflxChecks = [new Map(), new Map()];
  let snaps = [];
  const deadline = Date.now() + limitMs;
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
  return { snaps, failedAt, srflxChecks };
}
