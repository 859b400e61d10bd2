// A WebRTC call between two pages where the test itself carries offer, answer and candidates:
// it checks the topology with real Chromium ICE before (and independently of) callbox's
// signaling and web client.

import { instrument } from './instrument.js';

/** Sets up a data-channel call between pages a and b with `iceServers`; returns nothing. */
export async function startRawCall(a, b, iceServers) {
  for (const page of [a, b]) {
    await page.evaluate(instrument, 'all');
    await page.evaluate((ice) => {
      window.__raw = { pc: new RTCPeerConnection({ iceServers: ice }), out: [] };
      window.__raw.pc.onicecandidate = (e) => e.candidate && window.__raw.out.push(e.candidate.toJSON());
    }, iceServers);
  }
  const offer = await a.evaluate(async () => {
    const { pc } = window.__raw;
    pc.createDataChannel('nat-test');
    await pc.setLocalDescription(await pc.createOffer());
    return pc.localDescription.toJSON();
  });
  const answer = await b.evaluate(async (o) => {
    const { pc } = window.__raw;
    await pc.setRemoteDescription(o);
    await pc.setLocalDescription(await pc.createAnswer());
    return pc.localDescription.toJSON();
  }, offer);
  await a.evaluate((o) => window.__raw.pc.setRemoteDescription(o), answer);
}

/** Moves the candidates each side gathered since the last call to the other side. */
export async function trickle(a, b) {
  const take = (p) => p.evaluate(() => window.__raw.out.splice(0));
  const give = (p, cands) => p.evaluate(async (cs) => {
    for (const c of cs) await window.__raw.pc.addIceCandidate(c);
  }, cands);
  const [fromA, fromB] = await Promise.all([take(a), take(b)]);
  await Promise.all([give(b, fromA), give(a, fromB)]);
}
