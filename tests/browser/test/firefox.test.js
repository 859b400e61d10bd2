// Real calls between two browser engines: Debian's Firefox ESR (WebDriver BiDi, lib/firefox.js)
// and Chromium, on one callbox, each calling the other, once direct (host candidates on
// loopback) and once relay-only (?relay=1, through callbox's TURN), and both calling at once
// (glare). Each call must connect, decode video and hear audio both ways, carry chat, and end
// on both sides when one hangs up.
// Firefox differs from Chromium in stats, ICE and codecs; these calls prove the page copes.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { launchFirefox } from '../lib/firefox.js';
import {
  login, establishCall, hangUp, waitForPhase, snapshot, waitFor, waitForUser, sleep, screenshot,
  waitForConnected, waitForFrames, callEachOtherAtOnce,
} from '../lib/browser.js';

let env;
let firefox;
const rooms = {};

before(async () => {
  env = await startEnv();
  firefox = await launchFirefox();
  console.log(`Firefox ${await firefox.version()}`);
});
after(async () => {
  await firefox?.close();
  await env?.close();
});

/**
 * One room per path, each with a Chromium and a Firefox page logged in. The Firefox page of
 * the path under test is the only one open, so it is the foreground tab (Firefox throttles
 * background tabs, and puppeteer's clicks wait for an animation frame).
 */
async function openRoom(mode) {
  const rel = mode === 'relay' ? '/r/relay?relay=1' : '/r/direct';
  const chromium = await env.open(rel);
  const fox = await firefox.open(new URL(rel, env.server.url).href);
  env.pages.push(fox);
  await login(chromium, 'chromium');
  await login(fox, 'firefox');
  await waitForUser(chromium, 'firefox');
  await waitForUser(fox, 'chromium');
  rooms[mode] = { chromium, firefox: fox };
}

async function closeRoom(mode) {
  const room = rooms[mode];
  if (!room) return;
  await room.firefox.close();
  await room.chromium.context().close();
}

const audioEnergy = async (page) => (await snapshot(page)).stats?.inbound.audio?.totalAudioEnergy ?? 0;

/** The selected pair is what the mode promises: host↔host direct, or our own TURN relay. */
function assertPath(s, mode, who) {
  assert.ok(s.stats?.pair, `${who} has a selected candidate pair`);
  if (mode === 'relay') {
    assert.equal(s.iceTransportPolicy, 'relay', `${who} runs relay-only`);
    assert.equal(s.stats.pair.localType, 'relay', `${who} sends through a relay candidate`);
    assert.equal(s.stats.pair.localAddress, '127.0.0.1', `${who}'s relay is callbox's (127.0.0.1)`);
    const port = s.stats.pair.localPort;
    assert.ok(
      port >= env.server.relayPortMin && port <= env.server.relayPortMax,
      `${who}'s relay port ${port} is in callbox's range ${env.server.relayPortMin}-${env.server.relayPortMax}`,
    );
  } else {
    assert.equal(s.stats.relayed, false, `${who}'s call is direct`);
    assert.equal(s.stats.pair.localType, 'host', `${who} uses its host candidate`);
  }
}

/** One call: caller rings, callee accepts, media both ways on the expected path. */
async function callAndCheck(mode, caller, callee) {
  const pages = rooms[mode];
  const [from, to] = [pages[caller], pages[callee]];
  const { setupMs } = await establishCall(from, to, callee, caller, { timeoutMs: 30000 });
  console.log(`${mode} ${caller} -> ${callee}: click to frames on both sides in ${setupMs} ms`);
  for (const [page, who, peer] of [[from, caller, callee], [to, callee, caller]]) {
    const s = await snapshot(page);
    assert.equal(s.phase, 'in-call', `${who} is in the call`);
    assert.equal(s.peer, peer);
    assertPath(s, mode, who);
    await waitFor(`${who} hears ${peer} (inbound audio energy grows)`, async () => {
      const first = await audioEnergy(page);
      await sleep(1000);
      return (await audioEnergy(page)) > first;
    }, { timeoutMs: 15000, intervalMs: 0 });
    assert.match(
      await page.getByTestId('call-status').textContent(),
      new RegExp(`${peer}: connected · ${mode === 'relay' ? 'relayed through the server' : 'direct'}`),
    );
  }
  await screenshot(to, `firefox-${mode}-${callee}`);
  return { from, to };
}

/** Sends a chat line from `page` and waits until `other` shows it from `name`. */
async function chat(page, other, name, text) {
  await page.getByTestId('chat-input').fill(text);
  await page.getByTestId('chat-send').click();
  await waitFor(`"${text}" from ${name} shown`, () =>
    other.evaluate(
      ([n, t]) => [...document.querySelectorAll('#chat-log .chat-line')].some(
        (li) => li.querySelector('.who').textContent === n && li.querySelector('.text').textContent === t),
      [name, text],
    ));
}

/** `who` hangs up; both pages go idle, the other is told, and both release camera and mic. */
async function hangUpAndCheck(mode, who, other) {
  const pages = rooms[mode];
  // Keep the tracks in the page to check they were stopped after the call is gone.
  for (const page of [pages[who], pages[other]]) {
    await page.evaluate(() => {
      window.__callTracks = window.callbox.call?.localStream?.getTracks() ?? [];
    });
  }
  await hangUp(pages[who]);
  await waitForPhase(pages[other], 'idle');
  await waitForPhase(pages[who], 'idle');
  assert.match(await pages[other].getByTestId('notice').textContent(), new RegExp(`${who} hung up`));
  for (const [page, name] of [[pages[who], who], [pages[other], other]]) {
    const states = await page.evaluate(() => window.__callTracks.map((t) => t.readyState));
    assert.ok(states.length > 0 && states.every((s) => s === 'ended'), `${name} released camera and mic (${states})`);
    assert.equal(await page.evaluate(() => window.callbox.pc), null, `${name} has no connection left`);
  }
}

for (const mode of ['direct', 'relay']) {
  describe(`${mode} path`, () => {
    before(() => openRoom(mode));
    after(() => closeRoom(mode));

    test(`${mode}: Chromium calls Firefox, media both ways, chat both ways, Firefox hangs up`, async () => {
      await withDiagnostics(env, async () => {
        await callAndCheck(mode, 'chromium', 'firefox');
        await chat(rooms[mode].chromium, rooms[mode].firefox, 'chromium', `hello from Chromium (${mode})`);
        await chat(rooms[mode].firefox, rooms[mode].chromium, 'firefox', `hello from Firefox (${mode})`);
        await hangUpAndCheck(mode, 'firefox', 'chromium');
      });
    });

    test(`${mode}: Firefox calls Chromium, media both ways, Chromium hangs up`, async () => {
      await withDiagnostics(env, async () => {
        await callAndCheck(mode, 'firefox', 'chromium');
        await hangUpAndCheck(mode, 'chromium', 'firefox');
      });
    });

    if (mode === 'direct') {
      test('both call each other at once (glare): one call, media both ways', async () => {
        await withDiagnostics(env, async () => {
          const { chromium, firefox: fox } = rooms[mode];
          await callEachOtherAtOnce(chromium, 'chromium', fox, 'firefox');
          for (const [page, who, peer] of [[chromium, 'chromium', 'firefox'], [fox, 'firefox', 'chromium']]) {
            await waitForConnected(page, { timeoutMs: 30000 });
            await waitForFrames(page);
            assert.equal(await page.evaluate(() => window.callbox.peer), peer, `${who} is in the call with ${peer}`);
          }
          await hangUpAndCheck(mode, 'chromium', 'firefox');
        });
      });
    }
  });
}
