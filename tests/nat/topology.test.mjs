// The topology is what the traversal test claims it is: two port-randomising symmetric NATs in
// front of two isolated client networks, between which a direct WebRTC path cannot be made,
// even with STUN, while the same call through port-preserving NATs does connect. Without this,
// "the call connected through callbox's relay" would prove little. No callbox involved.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { addr, ns, netns, runIn, startIn, stopAll } from './lib/topology.mjs';
import { launchPair, snapshot } from './lib/browser.mjs';
import { startRawCall, trickle } from './lib/raw-call.mjs';
import { sleep } from './lib/wait.mjs';

const reflector = new URL('./reflector.mjs', import.meta.url).pathname;
const STUN_PORT = 3479;
const OTHER_PORT = 3480;
let browsers = [];

async function cleanup() {
  await Promise.all(browsers.map((b) => b.close()));
  browsers = [];
  await stopAll();
  netns('down');
}

before(async () => {
  netns('down'); // leftovers of an interrupted run with the same prefix
  netns('up');
  await startIn(ns.pub, process.execPath, [reflector, 'serve', addr.callbox, String(STUN_PORT), String(OTHER_PORT)], {
    ready: /ready/,
  });
});

after(cleanup);

function probe(netnsName, target, ports, ...flags) {
  const out = runIn(netnsName, process.execPath, [reflector, 'probe', target, ...ports.map(String), ...flags]);
  return JSON.parse(out.trim().split('\n').pop());
}

test('each router maps a client to a new random public port per destination (symmetric NAT)', { timeout: 60_000 }, () => {
  for (const [client, router] of [[ns.clientA, addr.routerA], [ns.clientB, addr.routerB]]) {
    const { mapped, error } = probe(client, addr.callbox, [STUN_PORT, OTHER_PORT]);
    assert.equal(error, undefined, `${client}: ${error}`);
    const [first, second] = mapped.map((m) => m.split(':'));
    assert.equal(first[0], router, `${client} is seen as its router's public address`);
    assert.equal(second[0], router);
    assert.notEqual(first[1], second[1], `${client}: one local socket, two destinations, two public ports`);
  }
});

test('client networks reach neither each other nor anything but the public side', { timeout: 60_000 }, () => {
  assert.match(probe(ns.clientA, addr.clientB, [STUN_PORT]).error, /no answer/);
  assert.match(probe(ns.clientB, addr.clientA, [STUN_PORT]).error, /no answer/);
  assert.match(probe(ns.pub, addr.clientA, [STUN_PORT]).error, /no answer/);
  for (const n of Object.values(ns)) {
    const routes = runIn(n, 'ip', ['-4', 'route']);
    const foreign = (routes.match(/\d+\.\d+\.\d+\.\d+/g) || []).filter((a) => !/^(10\.[12]\.0|203\.0\.113|198\.51\.100)\./.test(a));
    assert.deepEqual(foreign, [], `${n} routes only to the test's own addresses:\n${routes}`);
  }
});

test('the two routers reach each other through the public side (a direct path would be routable)', { timeout: 60_000 }, async () => {
  const onRouterB = await startIn(ns.routerB, process.execPath, [reflector, 'serve', addr.routerB, '4100', '--ttl', '20'], { ready: /ready/ });
  try {
    const { mapped, error } = probe(ns.routerA, addr.routerB, [4100], '--tcp');
    assert.equal(error, undefined);
    assert.equal(mapped[0].split(':')[0], addr.routerA);
  } finally {
    await onRouterB.stop();
  }
});

// Runs a test-signalled call between the two clients with our STUN reflector only and returns
// both sides' final snapshots, or as soon as both are connected.
async function stunOnlyRawCall(limitMs) {
  const [a, b] = await launchPair([ns.clientA, ns.clientB], {}, browsers);
  try {
    await startRawCall(a.page, b.page, [{ urls: `stun:${addr.callbox}:${STUN_PORT}` }]);
    const deadline = Date.now() + limitMs;
    let snaps;
    // Chromium drops failed pairs from getStats, so keep the largest check counts seen per pair.
    const seenPairs = [new Map(), new Map()];
    while (Date.now() < deadline) {
      await trickle(a.page, b.page);
      snaps = await Promise.all([snapshot(a.page), snapshot(b.page)]);
      snaps.forEach((s, i) => {
        for (const p of s.pairs || []) {
          const key = `${p.local}>${p.remote}#${p.id}`;
          const old = seenPairs[i].get(key);
          if (!old || p.requestsSent >= old.requestsSent) seenPairs[i].set(key, p);
        }
        s.pairsSeen = [...seenPairs[i].values()];
      });
      if (snaps.every((s) => s.connectionState === 'connected')) break;
      if (snaps.every((s) => s.connectionState === 'failed')) break;
      await sleep(250);
    }
    return snaps;
  } finally {
    await Promise.all([a.close(), b.close()]);
    browsers = browsers.filter((x) => x !== a && x !== b);
  }
}

test('direct call with STUN connects through port-preserving NATs (control)', { timeout: 60_000 }, async () => {
  netns('nat-mode', 'preserve');
  try {
    const snaps = await stunOnlyRawCall(15_000);
    for (const s of snaps) {
      assert.equal(s.connectionState, 'connected', JSON.stringify(s));
      assert.ok(['srflx', 'prflx'].includes(s.selected.remote.type) || ['srflx', 'prflx'].includes(s.selected.local.type), JSON.stringify(s.selected));
    }
  } finally {
    netns('nat-mode', 'random');
  }
});

test('direct call with STUN fails through the symmetric NATs after srflx candidates were exchanged', { timeout: 60_000 }, async () => {
  const snaps = await stunOnlyRawCall(25_000);
  for (const [side, s] of [['A', snaps[0]], ['B', snaps[1]]]) {
    assert.ok(s.gathered.includes('srflx'), `${side} gathered srflx: ${s.gathered}`);
    assert.ok(s.received.includes('srflx'), `${side} received the peer's srflx: ${s.received}`);
    assert.notEqual(s.connectionState, 'connected', `${side} must not connect: ${JSON.stringify(s.selected)}`);
    const tried = s.pairsSeen.filter((p) => p.remote === 'srflx' && p.requestsSent > 0);
    assert.ok(tried.length > 0, `${side} sent checks to the peer's srflx: ${JSON.stringify(s.pairsSeen)}`);
    assert.ok(tried.every((p) => p.responsesReceived === 0 && p.state !== 'succeeded'), JSON.stringify(tried));
  }
});
