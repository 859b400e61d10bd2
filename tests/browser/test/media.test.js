// In-call controls reach the other side as real media changes: mute stops the audio energy,
// camera off stops the video frames (and camera on brings them back), and screen sharing swaps
// the outgoing track with replaceTrack, without a renegotiation.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { establishCall, snapshot, waitFor, sleep, waitForFrames, screenshot } from '../lib/browser.js';

let env;
let alice;
let bob;

before(async () => {
  env = await startEnv();
  [alice, bob] = await env.loggedIn('alice', 'bob');
  await establishCall(alice, bob, 'bob', 'alice');
});
after(async () => env?.close());

const audioEnergy = async (page) => (await snapshot(page)).stats.inbound.audio?.totalAudioEnergy ?? 0;
const frames = async (page) => (await snapshot(page)).stats.inbound.video?.framesDecoded ?? 0;

/** How much `measure` grows over `ms`. */
async function growth(page, measure, ms = 2000) {
  const before = await measure(page);
  await sleep(ms);
  return (await measure(page)) - before;
}

test('muting the microphone silences it on the other side and shows it', async () => {
  await withDiagnostics(env, async () => {
    assert.ok((await growth(bob, audioEnergy)) > 0, 'bob hears alice before mute');
    await alice.getByTestId('toggle-mic').click();
    assert.equal(await alice.getByTestId('toggle-mic').getAttribute('aria-pressed'), 'true');
    await waitFor('bob told alice is muted', async () =>
      (await bob.getByTestId('remote-overlay').getAttribute('data-audio')) === 'false');
    await sleep(500);
    assert.ok((await growth(bob, audioEnergy)) < 1e-6, 'no audio energy reaches bob while muted');
    assert.match(await bob.getByTestId('remote-overlay').textContent(), /alice is muted/);
    await alice.getByTestId('toggle-mic').click();
    await waitFor('bob hears alice again', async () => (await growth(bob, audioEnergy, 1000)) > 0, { timeoutMs: 10000 });
  });
});

test('turning the camera off stops frames on the other side; on brings them back', async () => {
  await withDiagnostics(env, async () => {
    assert.ok((await growth(bob, frames, 1000)) > 0);
    await alice.getByTestId('toggle-camera').click();
    await waitFor('bob told the camera is off', async () =>
      (await bob.getByTestId('remote-overlay').getAttribute('data-video')) === 'false');
    await sleep(1000);
    assert.equal(await growth(bob, frames, 1500), 0, 'no video frames while the camera is off');
    assert.equal(
      await alice.evaluate(() => window.callbox.call.cameraTrack),
      null,
      'the camera itself is released',
    );
    await alice.getByTestId('toggle-camera').click();
    await waitFor('frames again after camera on', async () => (await growth(bob, frames, 1000)) > 0, { timeoutMs: 10000 });
    assert.equal(await bob.getByTestId('remote-overlay').isVisible(), false);
  });
});

test('sharing the screen swaps the outgoing track without renegotiating', async () => {
  await withDiagnostics(env, async () => {
    const sdpBefore = await alice.evaluate(() => window.callbox.pc.localDescription.sdp);
    const trackBefore = await alice.evaluate(
      () => window.callbox.pc.getSenders().find((s) => s.track?.kind === 'video').track.id);
    await alice.getByTestId('toggle-screen').click();
    await waitFor('screen track on the sender', async () =>
      (await alice.getByTestId('toggle-screen').getAttribute('aria-pressed')) === 'true');
    const sender = await alice.evaluate(() => {
      const t = window.callbox.pc.getSenders().find((s) => s.track?.kind === 'video')?.track;
      return { id: t?.id, surface: t?.getSettings().displaySurface ?? null };
    });
    assert.notEqual(sender.id, trackBefore, 'a different track is sent');
    assert.ok(sender.surface, 'the new track is a display capture');
    await waitForFrames(bob);
    await screenshot(bob, 'screen-share-bob');
    const sdpAfter = await alice.evaluate(() => window.callbox.pc.localDescription.sdp);
    assert.equal(sdpAfter, sdpBefore, 'no renegotiation for a track swap');
    await alice.getByTestId('toggle-screen').click();
    const back = await alice.evaluate(
      () => window.callbox.pc.getSenders().find((s) => s.track?.kind === 'video')?.track?.getSettings().displaySurface);
    assert.equal(back, undefined, 'back on the camera');
    await waitForFrames(bob);
  });
});

test('choosing another microphone swaps the sent track and the peer keeps hearing', async () => {
  await withDiagnostics(env, async () => {
    const options = await alice.getByTestId('mic-select').evaluate((s) => [...s.options].map((o) => o.value));
    assert.ok(options.length >= 2, `Chromium's fake devices offer several microphones (${options.length})`);
    const current = await alice.evaluate(
      () => window.callbox.pc.getSenders().find((s) => s.track?.kind === 'audio').track.getSettings().deviceId);
    const other = options.find((o) => o !== current);
    await alice.getByTestId('mic-select').selectOption(other);
    await waitFor('the audio sender uses the chosen microphone', async () =>
      (await alice.evaluate(
        () => window.callbox.pc.getSenders().find((s) => s.track?.kind === 'audio')?.track?.getSettings().deviceId)) === other);
    await waitFor('bob still hears alice', async () => (await growth(bob, audioEnergy, 1000)) > 0, { timeoutMs: 10000 });
  });
});

test('the remote video can go full screen', async () => {
  await withDiagnostics(env, async () => {
    await bob.getByTestId('fullscreen').click();
    await waitFor('remote video full screen', () =>
      bob.evaluate(() => document.fullscreenElement?.contains(document.getElementById('remote-video')) ?? false));
    await bob.evaluate(() => document.exitFullscreen());
  });
});
