// The NAT traversal test across address families (issue 10), on netns.sh's dual stage: alice on
// an IPv6-only network behind a port-randomising NAT66, bob on an IPv4-only one behind NAT44,
// carol on a second IPv6-only network behind NAT66; callbox dual-stack (one IPv4 and one IPv6
// relay address) under one name. alice and bob share no address family, so only callbox's
// relay, taking one family in and the other out, can join them; alice and carol share IPv6 but
// their symmetric NAT66s stop a direct path as the IPv4 NATs do.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dual, nsDual as ns, netns, runIn, startIn, stopAll } from './lib/topology.mjs';
import { startCallbox } from './lib/callbox.mjs';
import { snapshot } from './lib/browser.mjs';
import { waitFor } from './lib/wait.mjs';
import {
  stage, closeBrowsers, call, waitForMedia, pathOf, assertPageSaysRelayed,
  assertRelayedByCallbox, screenshots, report, withDiagnostics, watchWithoutRelay,
  assertRelayCarriedMedia, printResults, loginsOf,
} from './lib/calls.mjs';

const reflector = new URL('./reflector.mjs', import.meta.url).pathname;
const relayAddrs = [dual.callbox4, dual.callbox6];
const isV6 = (a) => String(a).includes(':');
// Variants whose call connected through the relay, for the byte-count check at the end.
const relayed = [];

before(async () => {
  netns('down');
  netns('up', 'dual');
  stage.callbox = await startCallbox(ns.pub, null, {
    template: 'callbox-dual.toml.in',
    vars: { HOST: dual.host, ADDR4: dual.callbox4, ADDR6: dual.callbox6 },
  });
});

after(async () => {
  await closeBrowsers();
  await stage.callbox?.stop();
  await stopAll();
  netns('down');
  printResults('NAT traversal summary (dual stack)');
});

function probe(netnsName, target, ports) {
  const out = runIn(netnsName, process.execPath, [reflector, 'probe', target, ...ports.map(String)]);
  return JSON.parse(out.trim().split('\n').pop());
}
const hostOf = (mapped) => mapped.slice(0, mapped.lastIndexOf(':'));
const portOf = (mapped) => mapped.slice(mapped.lastIndexOf(':') + 1);

test('the dual stage: NAT66 is symmetric, and the IPv6-only and IPv4-only networks share no family', { timeout: 60_000 }, async () => {
  const echo = await startIn(ns.pub, process.execPath, [reflector, 'serve', dual.callbox6, '3479', '3480', '--ttl', '30'], { ready: /ready/ });
  try {
    for (const [client, router] of [[ns.clientA, dual.routerA], [ns.clientC, dual.routerC]]) {
      const { mapped, error } = probe(client, dual.callbox6, [3479, 3480]);
      assert.equal(error, undefined, `${client}: ${error}`);
      assert.deepEqual(mapped.map(hostOf), [router, router], `${client} is seen as its NAT66's public address`);
      assert.notEqual(portOf(mapped[0]), portOf(mapped[1]), `${client}: one local socket, two destinations, two public ports`);
    }
    assert.match(probe(ns.clientA, dual.clientC, [3479]).error, /no answer/, 'the IPv6 client networks cannot reach each other');
    assert.match(probe(ns.pub, dual.clientA, [3479]).error, /no answer/, 'the public side cannot reach a client behind NAT66');
  } finally {
    await echo.stop();
  }
  for (const client of [ns.clientA, ns.clientC]) {
    const v4 = runIn(client, 'ip', ['-4', 'addr', 'show', 'scope', 'global']);
    assert.equal(v4.trim(), '', `${client} has no IPv4 address but loopback:\n${v4}`);
    const tentative = runIn(client, 'ip', ['-6', 'addr', 'show', 'tentative']);
    assert.equal(tentative.trim(), '', `${client}: no IPv6 address still tentative (no DAD):\n${tentative}`);
  }
  // No namespace routes anywhere but to the test's own prefixes (and link-local/multicast).
  for (const n of Object.values(ns)) {
    const routes = runIn(n, 'sh', ['-c', 'ip -4 route; ip -6 route 2>/dev/null || true']);
    const foreign = routes.split('\n').map((l) => l.split(' ')[0]).filter((dst) => dst && dst !== 'default')
      .filter((dst) => !/^(10\.2\.0\.|198\.51\.100\.|203\.0\.113\.|2001:db8:[1ac]::|fd00:[ac]::|fe80::|ff00::|multicast)/.test(dst));
    assert.deepEqual(foreign, [], `${n} routes only to the test's own prefixes:\n${routes}`);
    const gateways = [...routes.matchAll(/default via (\S+)/g)].map((m) => m[1]);
    for (const gw of gateways) assert.match(gw, /^(10\.2\.0\.1|198\.51\.100\.1|2001:db8:[ac]::1|fd00:[ac]::1)$/, `${n}: default route only into the stage`);
  }
  const v6 = runIn(ns.clientB, 'sh', ['-c', 'cat /proc/sys/net/ipv6/conf/all/disable_ipv6; ip -6 addr']);
  assert.equal(v6.trim(), '1', `${ns.clientB} has IPv6 disabled:\n${v6}`);
});

const families = (s) => [s.selected.local, s.selected.remote].map((c) => `${c.type} ${c.address ? (isV6(c.address) ? 'IPv6' : 'IPv4') : '(hidden)'}`).join(' <-> ');

test('IPv6-only alice and IPv4-only bob call through the dual-stack relay over UDP', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    const { a, b, clickedAt } = await call('mixed', [ns.clientA, ns.clientB]);
    const media = await waitForMedia(a, b, clickedAt);
    const localRelays = assertRelayedByCallbox(media.snaps, relayAddrs);
    for (const s of localRelays) assert.equal(s.selected.local.relayProtocol, 'udp', pathOf(s));
    const [sa, sb] = media.snaps;
    // alice has no IPv4 and bob no IPv6, so the only path is alice's own allocation, made over
    // IPv6, with an IPv4 relay address that bob's IPv4 candidates can pair with: callbox took
    // her IPv6 in and sent IPv4 out. (Chromium asks for no address family, so it gets IPv4.)
    assert.equal(sa.selected.local.type, 'relay', `alice sends through her own allocation: ${pathOf(sa)}`);
    assert.equal(sa.selected.local.address, dual.callbox4, `alice's relay is callbox's IPv4 address: ${pathOf(sa)}`);
    for (const c of [sb.selected.local, sb.selected.remote]) {
      // A peer-reflexive remote's address is hidden from getStats; the others must be IPv4.
      assert.ok(!c.address || !isV6(c.address), `bob's path is IPv4 at both ends: ${pathOf(sb)}`);
    }
    // And callbox's STUN answered alice over IPv6, through her NAT66.
    assert.ok(sa.gatheredList.includes(`srflx ${dual.routerA}`), `alice's srflx is her NAT66's address: ${sa.gatheredList}`);
    await assertPageSaysRelayed(a, b);
    await screenshots('mixed', a, b);
    report('IPv6-only <-> IPv4-only, TURN/UDP', media);
    stage.results.push(`  families: alice ${families(sa)}; bob ${families(sb)}`);
    relayed.push('mixed');
  }));

test('IPv6-only and IPv4-only with STUN only (TURN withheld) cannot connect: no candidate pair is even possible', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    const { a, b } = await call('mixed-stun', [ns.clientA, ns.clientB], { policy: 'stun-only' });
    // Both sides learn and exchange their public addresses (alice's IPv6, bob's IPv4) ...
    await waitFor('both sides to gather and exchange srflx candidates', async () => {
      const snaps = await Promise.all([snapshot(a.page), snapshot(b.page)]);
      const done = snaps.every((s) => s?.gathered.includes('srflx') && s.received.includes('srflx'));
      return done || { ok: false, seen: snaps.map((s) => s && { gathered: s.gatheredList, received: s.receivedList }) };
    }, { timeoutMs: 20_000 });
    // ... and then 10 s pass without one connectivity check: no two candidates share a family.
    const { snaps, srflxChecks } = await watchWithoutRelay(a, b, 10_000);
    const sides = ['alice', 'bob'];
    const srflx = [`srflx ${dual.routerA}`, `srflx ${dual.routerB}`];
    snaps.forEach((s, i) => {
      assert.ok(s.iceServerSchemes.some((x) => x.startsWith('turn')), `callbox offered TURN, the test withheld it: ${s.iceServerSchemes}`);
      assert.ok(!s.gathered.includes('relay'), `${sides[i]} had no relay candidate (TURN withheld): ${s.gathered}`);
      assert.ok(s.gatheredList.includes(srflx[i]), `${sides[i]} gathered ${srflx[i]}: ${s.gatheredList}`);
      assert.ok(s.receivedList.includes(srflx[1 - i]), `${sides[i]} received the peer's ${srflx[1 - i]}: ${s.receivedList}`);
      assert.ok(!s.history.includes('connection:connected'), `${sides[i]} must never connect without the relay: ${s.history}`);
      assert.deepEqual(s.pairs, [], `${sides[i]} formed no candidate pair (families differ): ${JSON.stringify(s.pairs)}`);
      assert.equal(srflxChecks[i].size, 0, `${sides[i]} never had a pair to a srflx`);
    });
    const line = 'IPv6-only <-> IPv4-only, STUN only: no connection; srflx candidates (IPv6 and IPv4) gathered and exchanged, no candidate pair possible';
    stage.results.push(line);
    console.log(line);
  }));

test('alice and carol, both IPv6-only behind symmetric NAT66, call relay to relay through callbox', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    const { a, b, clickedAt } = await call('nat66', [ns.clientA, ns.clientC]);
    const media = await waitForMedia(a, b, clickedAt);
    assertRelayedByCallbox(media.snaps, relayAddrs);
    // Their IPv6 candidates cannot meet through the NAT66s (next test), and their relays are
    // IPv4, the one family in which they have candidates in common only through callbox.
    media.snaps.forEach((s, i) => {
      const name = ['alice', 'carol'][i];
      assert.equal(s.selected.local.type, 'relay', `${name} sends through her own allocation: ${pathOf(s)}`);
      assert.equal(s.selected.local.relayProtocol, 'udp', pathOf(s));
      assert.ok(['relay', 'prflx'].includes(s.selected.remote.type), `${name} reaches the other's relay: ${pathOf(s)}`);
    });
    await assertPageSaysRelayed(a, b);
    await screenshots('nat66', a, b);
    report('IPv6-only <-> IPv6-only (NAT66 both), TURN/UDP', media);
    stage.results.push(`  families: alice ${families(media.snaps[0])}; carol ${families(media.snaps[1])}`);
    relayed.push('nat66');
  }));

test('through the two symmetric NAT66s a direct IPv6 call with STUN only fails although srflx candidates were exchanged', { timeout: 90_000 }, () =>
  withDiagnostics(async () => {
    const { a, b } = await call('nat66-stun', [ns.clientA, ns.clientC], { policy: 'stun-only' });
    const sides = ['alice', 'carol'];
    const srflx = [`srflx ${dual.routerA}`, `srflx ${dual.routerC}`];
    // As the IPv4 control: until one side's ICE failed and 2 s more, at most 40 s.
    const { snaps, failedAt, srflxChecks } = await watchWithoutRelay(a, b, 40_000);
    assert.ok(failedAt, `ICE failed on at least one side within 40 s: ${JSON.stringify(snaps.map((s) => s?.history))}`);
    snaps.forEach((s, i) => {
      assert.ok(!s.gathered.includes('relay'), `${sides[i]} had no relay candidate (TURN withheld): ${s.gathered}`);
      assert.ok(s.gatheredList.includes(srflx[i]), `${sides[i]} gathered ${srflx[i]}: ${s.gatheredList}`);
      assert.ok(s.receivedList.includes(srflx[1 - i]), `${sides[i]} received the peer's ${srflx[1 - i]}: ${s.receivedList}`);
      assert.ok(!s.history.includes('connection:connected'), `${sides[i]} must never connect without the relay: ${s.history}`);
      const tried = [...srflxChecks[i].values()].filter((p) => p.requestsSent > 0);
      assert.ok(tried.length > 0, `${sides[i]} sent connectivity checks to the peer's srflx`);
      assert.ok(tried.every((p) => p.responsesReceived === 0), `${sides[i]}: no check to a srflx got an answer: ${JSON.stringify(tried)}`);
    });
    const checks = [...srflxChecks[0].values(), ...srflxChecks[1].values()].reduce((n, p) => n + p.requestsSent, 0);
    const line = `IPv6 <-> IPv6 (NAT66 both), STUN only: no connection; IPv6 srflx candidates gathered and exchanged, ${checks} checks to them unanswered, ICE failed`;
    stage.results.push(line);
    console.log(line);
  }));

test("callbox's dual-stack relay carried the calls: its allocation summaries count the media bytes", { timeout: 90_000 }, async (t) => {
  if (relayed.length === 0) return t.skip('no relayed call connected');
  const summaries = await assertRelayCarriedMedia(relayed);
  const mine = summaries.filter((s) => relayed.some((v) => loginsOf(v).includes(s.user)));
  const v6 = mine.filter((s) => s.relay.startsWith('['));
  stage.results.push(`relay families of the browsers' ${mine.length} allocations: ${mine.length - v6.length} IPv4, ${v6.length} IPv6`);
});
