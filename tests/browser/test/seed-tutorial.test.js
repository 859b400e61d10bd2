// The seed tutorial's own client (fixtures/seed001: the 2016 page and client.js as the tutorial
// gives them, only the WebSocket URL changed) works against callbox: two people log in, a
// taken name is refused with the tutorial's alert, one calls the other by name, both see each
// other's video, and hanging up closes both connections. Served from a tiny loopback HTTP
// server (callbox serves only its own page; extra_origins lets that page's WebSocket in).
// Where today's Chromium dropped an API the page uses, lib/legacy-webrtc-shim.js stands in.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { waitFor, sleep, screenshot } from '../lib/browser.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = path.join(here, '../fixtures/seed001');
const SHIM = path.join(here, '../lib/legacy-webrtc-shim.js');

let env;
let site;
let siteUrl;
let alice;
let bob;

/** Serves index.html and client.js (callbox's port filled in); anything else is a 404. */
function serveTutorial(callboxPort) {
  const html = readFileSync(path.join(FIXTURE, 'index.html'));
  const js = readFileSync(path.join(FIXTURE, 'client.js'), 'utf8');
  return http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/' || url.pathname === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html);
    } else if (url.pathname === '/client.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' })
        .end(js.replace('CALLBOX_PORT', String(callboxPort())));
    } else {
      res.writeHead(404).end();
    }
  });
}

before(async () => {
  let callboxPort = null;
  site = serveTutorial(() => callboxPort);
  await new Promise((resolve, reject) => {
    site.once('error', reject);
    site.listen(0, '127.0.0.1', resolve);
  });
  siteUrl = `http://127.0.0.1:${site.address().port}/`;
  env = await startEnv({ server: { serverExtra: `extra_origins = ["${siteUrl.slice(0, -1)}"]` } });
  callboxPort = env.server.httpPort;
  [alice, bob] = [await openTutorial(), await openTutorial()];
});
after(async () => {
  await env?.close();
  await new Promise((resolve) => (site ? site.close(resolve) : resolve()));
});

async function openTutorial() {
  const page = await env.open(siteUrl, { initScript: SHIM });
  page.dialogs = [];
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  return page;
}

const shown = (page, id) => page.evaluate((i) => getComputedStyle(document.getElementById(i)).display, id);

/** The tutorial's login: type a name, click "Sign in". */
async function signIn(page, name) {
  await waitFor('the page connected to callbox', () => page.evaluate(() => window.conn?.readyState === 1));
  await page.locator('#usernameInput').fill(name);
  await page.locator('#loginBtn').click();
}

/** The page's own RTCPeerConnection (`var yourConn`) and its video stats. */
const peer = (page) =>
  page.evaluate(async () => {
    const pc = window.yourConn;
    if (!pc) return null;
    let framesDecoded = 0;
    let pair = null;
    // A closed connection has no stats (getStats throws).
    const report = pc.signalingState === 'closed' ? new Map() : await pc.getStats();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded = s.framesDecoded ?? 0;
      if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') {
        pair = { local: report.get(s.localCandidateId), remote: report.get(s.remoteCandidateId) };
        pair = { localType: pair.local?.candidateType, localAddress: pair.local?.address, remoteAddress: pair.remote?.address };
      }
    });
    const remote = document.getElementById('remoteVideo');
    return {
      connectionState: pc.connectionState,
      signalingState: pc.signalingState,
      framesDecoded,
      pair,
      remoteVideo: { hasStream: Boolean(remote.srcObject), width: remote.videoWidth },
    };
  });

test('both sign in through callbox and see the call page with their own camera', async () => {
  await withDiagnostics(env, async () => {
    await signIn(alice, 'alice');
    await signIn(bob, 'bob');
    for (const page of [alice, bob]) {
      await waitFor('the call page shown, the login page hidden', async () =>
        (await shown(page, 'callPage')) === 'block' && (await shown(page, 'loginPage')) === 'none');
      await waitFor('the local camera playing and the connection created', () =>
        page.evaluate(() => document.getElementById('localVideo').videoWidth > 0 && Boolean(window.yourConn)));
      const shim = await page.evaluate(() => window.__legacyShim);
      assert.deepEqual(
        shim.askedIceServers,
        [{ url: 'stun:stun2.1.google.com:19302' }],
        'the page asks for the public STUN server it was written with',
      );
      assert.deepEqual(shim.usedIceServers, [], 'which the test keeps off the network');
    }
    assert.deepEqual([alice.dialogs, bob.dialogs], [[], []], 'no "try a different username" alert');
  });
});

test('a taken name is refused with the tutorial\'s alert', async () => {
  await withDiagnostics(env, async () => {
    const carol = await openTutorial();
    await signIn(carol, 'alice');
    await waitFor('the tutorial\'s alert', () => carol.dialogs.length > 0);
    assert.deepEqual(carol.dialogs, ['Ooops...try a different username']);
    assert.equal(await shown(carol, 'callPage'), 'none', 'still on the login page');
    await carol.context().close();
  });
});

test('alice calls bob by name: both connect and play each other\'s video', async () => {
  await withDiagnostics(env, async () => {
    await alice.locator('#callToUsernameInput').fill('bob');
    await alice.locator('#callBtn').click();
    for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
      const first = await waitFor(`${who} connected and decoding the other's video`, async () => {
        const s = await peer(page);
        return s?.connectionState === 'connected' && s.framesDecoded > 0 && s.remoteVideo.width > 0 ? s : null;
      }, { timeoutMs: 30000 });
      assert.equal(first.pair?.localType, 'host', `${who}'s call is direct between host candidates`);
      assert.equal(first.pair?.localAddress, '127.0.0.1');
      await sleep(1000);
      const later = await peer(page);
      assert.ok(later.framesDecoded > first.framesDecoded, `${who}'s remote video keeps playing`);
    }
    await screenshot(bob, 'seed-tutorial-bob');
  });
});

test('alice hangs up: both connections close and bob\'s remote video stops', async () => {
  await withDiagnostics(env, async () => {
    await alice.locator('#hangUpBtn').click();
    for (const [page, who] of [[alice, 'alice'], [bob, 'bob']]) {
      const s = await waitFor(`${who}'s connection closed`, async () => {
        const p = await peer(page);
        return p?.signalingState === 'closed' ? p : null;
      }, { timeoutMs: 10000 });
      assert.equal(s.remoteVideo.hasStream, false, `${who}'s remote video detached`);
    }
    const scriptErrors = [alice, bob].flatMap((p) => p.consoleLog).filter((l) => l.startsWith('pageerror'));
    assert.deepEqual(scriptErrors, [], 'the page ran without script errors');
  });
});
