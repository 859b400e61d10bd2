// In-call controls reach the other side as real media changes: mute stops the audio energy,
// camera off stops the video frames (and camera on brings them back), and screen sharing swaps
// the outgoing track with replaceTrack, without a renegotiation.
//
// Audio that left alice before the click is still in flight (encoder, network, bob's jitter
// buffer) when the call-media message saying "muted" reaches bob over the faster signaling
// path; under load that tail grows. So "muted" is checked once bob's received energy settled,
// and each test starts from alice unmuted, camera on, not sharing (afterEach puts her back),
// so one failure does not leave the next tests muted too.

import { test, before, after, afterEach } from 'node:test';
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

/** Puts alice back to mic on, camera on, no screen share, and waits until bob is told so. */
afterEach(async () => {
  const now = () => alice.evaluate(() => {
    const c = window.callbox.call;
    return { mic: c?.micOn, camera: c?.cameraOn, screen: Boolean(c?.screenTrack) };
  });
  const s = await now();
  if (s.screen) await alice.getByTestId('toggle-screen').click();
  if (s.mic === false) await alice.getByTestId('toggle-mic').click();
  if (s.camera === false) await alice.getByTestId('toggle-camera').click();
  await waitFor('alice back to mic on, camera on, not sharing', async () => {
    const n = await now();
    return n.mic && n.camera && !n.screen ? n : null;
  }, { timeoutMs: 10000 });
  await waitFor('bob told alice is heard and seen again', async () => {
    const o = bob.getByTestId('remote-overlay');
    return (await o.getAttribute('data-audio')) === 'true' && (await o.getAttribute('data-video')) === 'true';
  }, { timeoutMs: 10000 });
});

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
    const heard = await growth(bob, audioEnergy);
    assert.ok(heard > 0, `bob hears alice before mute (energy grew by ${heard} in 2 s)`);
    await alice.getByTestId('toggle-mic').click();
    assert.equal(await alice.getByTestId('toggle-mic').getAttribute('aria-pressed'), 'true');
    assert.deepEqual(
      await alice.evaluate(() => window.callbox.pc.getSenders()
        .filter((s) => s.track?.kind === 'audio').map((s) => s.track.enabled)),
      [false],
      'the one audio sender carries the muted (disabled) microphone',
    );
    await waitFor('bob told alice is muted', async () =>
      (await bob.getByTestId('remote-overlay').getAttribute('data-audio')) === 'false');
    // Bounded: if muting did not silence the sender, the energy keeps growing and this fails.
    await waitFor('the audio already in flight before the mute has played out at bob', async () => {
      const g = await growth(bob, audioEnergy, 500);
      return g < 1e-6 ? 'settled' : null;
    }, { timeoutMs: 10000, intervalMs: 0 });
    const muted = await growth(bob, audioEnergy);
    assert.ok(muted < 1e-6, `no audio energy reaches bob while muted (grew by ${muted} in 2 s)`);
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
    // Frames already in flight before the click may still be decoded; then none.
    await waitFor('the frames in flight before camera off are decoded', async () =>
      ((await growth(bob, frames, 500)) === 0 ? 'settled' : null), { timeoutMs: 10000, intervalMs: 0 });
    assert.equal(await growth(bob, frames, 1500), 0, 'no video frames while the camera is off');
    assert.equal(
      await alice.evaluate(() => window.callbox.call.cameraTrack),
      null,
      'the camera itself is released',
    );
    await alice.getByTestId('toggle-camera').click();
    await waitFor('frames again after camera on', async () => (await growth(bob, frames, 1000)) > 0, { timeoutMs: 10000 });
    // The frames and the call-media message travel separate paths: wait for both.
    await waitFor('bob told the camera is on again, overlay hidden', async () =>
      (await bob.getByTestId('remote-overlay').getAttribute('data-video')) === 'true' &&
      !(await bob.getByTestId('remote-overlay').isVisible()), { timeoutMs: 10000 });
  });
});

test('a double click on "Turn camera on" starts one camera, the one that is sent', async () => {
  await withDiagnostics(env, async () => {
    await alice.getByTestId('toggle-camera').click();
    await waitFor('alice\'s camera off', () =>
      alice.evaluate(() => window.callbox.call.cameraOn === false && window.callbox.call.cameraTrack === null));
    // Count the cameras the page starts; both clicks land before the first camera is ready.
    await alice.evaluate(() => {
      const devices = navigator.mediaDevices;
      const native = devices.getUserMedia.bind(devices);
      window.__cameras = { started: [], pending: 0 };
      devices.getUserMedia = async (constraints) => {
        window.__cameras.pending += 1;
        try {
          const stream = await native(constraints);
          window.__cameras.started.push(...stream.getVideoTracks());
          return stream;
        } finally {
          window.__cameras.pending -= 1;
        }
      };
      const button = document.querySelector('[data-testid="toggle-camera"]');
      button.click();
      button.click();
    });
    const seen = await waitFor('every camera request answered and the camera sent', () =>
      alice.evaluate(() => {
        const c = window.callbox.call;
        const { started, pending } = window.__cameras;
        if (pending > 0 || !c.cameraOn || !c.cameraTrack || c.videoSender()?.track !== c.cameraTrack) return null;
        return { live: started.filter((t) => t.readyState === 'live').map((t) => t.id), sent: c.cameraTrack.id };
      }), { timeoutMs: 10000 });
    assert.deepEqual(seen.live, [seen.sent], 'one live camera, and it is the one sent (no stray camera left on)');
    await waitForFrames(bob);
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
