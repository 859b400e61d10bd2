// The page: login, who is online, chat, and the call flow (ring, accept/decline/busy/timeout,
// cancel, hang up) on top of the relay's targeted messages (docs/client.md lists them).
// window.callbox exposes read-only state for the browser tests.

import { Call } from './call.js';
import { getLocalMedia, listDevices, explainMediaError } from './media.js';
import { describe, summarize } from './stats.js';
import { Signaling } from './signaling.js';
import { roomFromLocation, loadSession, saveSession, clearSession, lastName } from './session.js';
import { $, show, renderUsers, appendChat, fillSelect, setPressed } from './ui.js';

const RING_MS = 30_000;
// The caller waits a little longer than the callee rings, so "did not answer" normally comes
// from the callee's own timeout.
const CALLER_WAIT_MS = 35_000;
const QUEUE_MAX = 200;
const CALL_TYPES = new Set(['video-offer', 'video-answer', 'new-ice-candidate']);

const room = roomFromLocation();
const relayOnly = new URLSearchParams(location.search).get('relay') === '1';
const signaling = new Signaling(room);

const state = {
  me: null,
  users: [],
  iceServers: [],
  // idle | calling | ringing | in-call
  phase: 'idle',
  peer: null,
  call: null,
  timer: null,
  buffered: [],
  outbox: [],
  media: null,
  peerMedia: null,
  devices: { cameraId: null, micId: null },
};

// ---------- helpers ----------

function sendTo(peer, message) {
  const full = { ...message, name: state.me, target: peer };
  if (signaling.loggedIn && signaling.send(full)) return;
  // Socket down: keep call messages (ICE restart, hang-up) for after the re-login.
  if (state.outbox.length < QUEUE_MAX) state.outbox.push(full);
}

function notice(text) {
  $('notice').textContent = text;
}

function setPhase(phase, peer = state.peer) {
  state.phase = phase;
  state.peer = phase === 'idle' ? null : peer;
  document.body.dataset.phase = phase;
  show($('incoming'), phase === 'ringing');
  show($('outgoing'), phase === 'calling');
  show($('call-controls'), phase === 'in-call');
  document.title = phase === 'ringing' ? `${peer} is calling — callbox` : 'callbox';
  if (phase === 'ringing') {
    $('incoming-text').textContent = `${peer} is calling you`;
    $('accept-call').focus();
  }
  if (phase === 'calling') $('outgoing-text').textContent = `Calling ${peer}…`;
  if (phase === 'idle') {
    $('call-status').textContent = 'Not in a call';
    $('call-status').dataset.state = 'idle';
    delete $('call-status').dataset.path;
  }
  renderUserList();
}

function renderUserList() {
  renderUsers($('user-list'), state.users, {
    me: state.me,
    canCall: state.phase === 'idle',
    onCall: startCall,
  });
}

function clearTimer() {
  clearTimeout(state.timer);
  state.timer = null;
}

/** Ends whatever call activity there is, locally. `why` goes to the notice line. */
function endCall(why) {
  clearTimer();
  if (state.call) state.call.close();
  state.call = null;
  state.buffered = [];
  state.peerMedia = null;
  state.outbox = state.outbox.filter((m) => !CALL_TYPES.has(m.type));
  takeMedia().then((stream) => stream?.getTracks().forEach((t) => t.stop()));
  $('remote-video').srcObject = null;
  $('local-video').srcObject = null;
  show($('remote-overlay'), false);
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  if (why !== undefined) notice(why);
  setPhase('idle');
}

async function acquireMedia() {
  const { stream, problems } = await getLocalMedia({
    audioId: state.devices.micId,
    videoId: state.devices.cameraId,
  });
  if (problems.length) notice(problems.join(' '));
  $('local-video').srcObject = stream;
  return stream;
}

// ---------- outgoing ----------

async function startCall(peer) {
  if (state.phase !== 'idle' || peer === state.me) return;
  notice('');
  setPhase('calling', peer);
  // Kept as a promise: an answer (or the callee calling us at the same moment) may arrive
  // while the camera is still starting, and takes the stream from here.
  const media = acquireMedia();
  state.media = media;
  await media;
  if (state.media !== media || state.phase !== 'calling' || state.peer !== peer) return;
  sendTo(peer, { type: 'call-request' });
  clearTimer();
  state.timer = setTimeout(() => {
    if (state.phase === 'calling' && state.peer === peer) {
      sendTo(peer, { type: 'call-cancel' });
      endCall(`${peer} did not answer.`);
    }
  }, CALLER_WAIT_MS);
}

function cancelCall() {
  if (state.phase !== 'calling') return;
  sendTo(state.peer, { type: 'call-cancel' });
  endCall('Call cancelled.');
}

// ---------- incoming ----------

function ring(peer) {
  notice('');
  setPhase('ringing', peer);
  clearTimer();
  state.timer = setTimeout(() => {
    if (state.phase === 'ringing' && state.peer === peer) {
      sendTo(peer, { type: 'call-decline', reason: 'timeout' });
      endCall(`Missed call from ${peer}.`);
    }
  }, RING_MS);
}

async function acceptCall() {
  if (state.phase !== 'ringing') return;
  const peer = state.peer;
  clearTimer();
  const stream = await acquireMedia();
  if (state.phase !== 'ringing' || state.peer !== peer) {
    stream?.getTracks().forEach((t) => t.stop());
    return;
  }
  beginCall(peer, { polite: true, stream });
  sendTo(peer, { type: 'call-accept' });
}

function declineCall() {
  if (state.phase !== 'ringing') return;
  sendTo(state.peer, { type: 'call-decline', reason: 'declined' });
  endCall('');
}

// ---------- the call ----------

/** The caller's camera/mic stream (started when the call was placed), now owned by the taker. */
async function takeMedia() {
  const media = state.media;
  state.media = null;
  return media ? media : null;
}

/** Caller side (also the glare winner's callee side): start the call once our media is ready. */
async function beginWithCallerMedia(peer, polite) {
  const stream = await takeMedia();
  if (state.phase !== 'calling' || state.peer !== peer) {
    stream?.getTracks().forEach((t) => t.stop());
    return;
  }
  beginCall(peer, { polite, stream });
  if (polite) sendTo(peer, { type: 'call-accept' });
}

function beginCall(peer, { polite, stream }) {
  clearTimer();
  const call = new Call({
    peer,
    polite,
    iceServers: state.iceServers,
    relayOnly,
    send: (message) => sendTo(peer, message),
    localStream: stream,
  });
  state.call = call;
  call.cameraId = state.devices.cameraId;
  setPhase('in-call', peer);
  $('local-video').srcObject = stream;
  call.addEventListener('remote-stream', ({ detail }) => {
    if ($('remote-video').srcObject !== detail.stream) $('remote-video').srcObject = detail.stream;
    renderPeerMedia();
  });
  call.addEventListener('state', ({ detail }) => renderCallStatus(detail.state, call.lastSummary));
  call.addEventListener('stats', ({ detail }) => renderCallStatus(detail.state, detail.summary));
  call.addEventListener('local-media', () => {
    renderLocalControls();
    sendMediaState();
  });
  call.addEventListener('error', ({ detail }) => console.warn('callbox call:', detail.error));
  renderLocalControls();
  renderCallStatus('new', null);
  refreshDevices();
  if (!polite) call.start();
  for (const message of state.buffered.splice(0)) call.handle(message);
  sendMediaState();
}

function hangUp() {
  if (state.phase !== 'in-call') return;
  sendTo(state.peer, { type: 'hang-up' });
  endCall('Call ended.');
}

function renderCallStatus(connectionState, summary) {
  const status = $('call-status');
  if (state.phase !== 'in-call') return;
  status.textContent = `${state.peer}: ${describe(connectionState, summary)}`;
  status.dataset.state = connectionState;
  if (connectionState === 'connected' && summary?.pair) {
    status.dataset.path = summary.relayed ? 'relay' : 'direct';
  }
}

function sendMediaState() {
  const call = state.call;
  if (!call) return;
  sendTo(call.peer, {
    type: 'call-media',
    audio: Boolean(call.micTrack) && call.micOn,
    video: Boolean(call.outgoingVideo()),
    screen: Boolean(call.screenTrack),
  });
}

function renderPeerMedia() {
  const overlay = $('remote-overlay');
  const media = state.peerMedia;
  const words = [];
  if (media && !media.video) words.push(`${state.peer}'s camera is off`);
  if (media && !media.audio) words.push(`${state.peer} is muted`);
  overlay.textContent = words.join(' · ');
  overlay.dataset.video = media ? String(media.video) : 'unknown';
  overlay.dataset.audio = media ? String(media.audio) : 'unknown';
  show(overlay, words.length > 0);
}

function renderLocalControls() {
  const call = state.call;
  if (!call) return;
  setPressed($('toggle-mic'), !call.micOn, 'Unmute microphone', 'Mute microphone');
  setPressed($('toggle-camera'), !call.cameraOn, 'Turn camera on', 'Turn camera off');
  setPressed($('toggle-screen'), Boolean(call.screenTrack), 'Stop sharing', 'Share screen');
  $('toggle-mic').disabled = !call.micTrack;
  $('local-video').srcObject = call.screenTrack ? new MediaStream([call.screenTrack]) : call.localStream;
}

async function refreshDevices() {
  try {
    const { cameras, mics } = await listDevices();
    const call = state.call;
    fillSelect($('camera-select'), cameras, call?.cameraTrack?.getSettings().deviceId ?? state.devices.cameraId);
    fillSelect($('mic-select'), mics, call?.micTrack?.getSettings().deviceId ?? state.devices.micId);
  } catch {
    // Device lists are a nicety; the call works without them.
  }
}

async function guarded(action, what) {
  try {
    await action();
  } catch (error) {
    notice(explainMediaError(error, what));
  }
}

// ---------- messages from the relay ----------

function onRelayMessage(message) {
  const from = typeof message.name === 'string' ? message.name : null;
  switch (message.type) {
    case 'call-request':
      if (!from) return;
      if (state.phase === 'idle') return ring(from);
      if (state.phase === 'calling' && state.peer === from) {
        // Both called each other at once: the name that sorts later answers, the other stays caller.
        if (state.me.toLowerCase() > from.toLowerCase()) beginWithCallerMedia(from, true);
        return;
      }
      if (state.peer === from && state.phase === 'in-call') return;
      return sendTo(from, { type: 'call-decline', reason: 'busy' });
    case 'call-accept':
      if (state.phase === 'calling' && state.peer === from) {
        beginWithCallerMedia(from, false);
        return;
      }
      if (!(state.phase === 'in-call' && state.peer === from)) sendTo(from, { type: 'hang-up' });
      return;
    case 'call-decline':
      if (state.phase === 'calling' && state.peer === from) {
        const why = {
          busy: `${from} is busy in another call.`,
          timeout: `${from} did not answer.`,
        }[message.reason] ?? `${from} declined the call.`;
        endCall(why);
      }
      return;
    case 'call-cancel':
      if (state.phase === 'ringing' && state.peer === from) return endCall(`Missed call from ${from}.`);
      if (state.phase === 'in-call' && state.peer === from) return endCall(`${from} ended the call.`);
      return;
    case 'hang-up':
    case 'leave':
      if (state.peer !== from) return;
      if (state.phase === 'in-call') return endCall(`${from} hung up.`);
      if (state.phase === 'ringing') return endCall(`Missed call from ${from}.`);
      if (state.phase === 'calling') return endCall(`${from} is not available.`);
      return;
    case 'call-media':
      if (state.phase === 'in-call' && state.peer === from) {
        state.peerMedia = { audio: message.audio !== false, video: message.video !== false };
        renderPeerMedia();
      }
      return;
    case 'video-offer':
    case 'video-answer':
    case 'new-ice-candidate':
      if (!from) return;
      if (state.phase === 'in-call' && state.peer === from) return state.call.handle(message);
      if (state.phase === 'ringing' && state.peer === from) {
        if (state.buffered.length < QUEUE_MAX) state.buffered.push(message);
        return;
      }
      if (state.phase === 'idle' && message.type === 'video-offer') {
        // A client that skips call-request (the MDN demo): ring for it, answer on Accept.
        state.buffered = [message];
        return ring(from);
      }
      return;
    default:
  }
}

// ---------- login, presence, chat ----------

const LOGIN_REASONS = {
  'name-taken': 'That name is already taken in this room. Choose another.',
  'invalid-name': 'Names are 1 to 32 characters, with no control characters.',
  'bad-access-code': 'Wrong access code for this room.',
  'already-logged-in': 'You are already logged in.',
};

function validName(name) {
  // eslint-disable-next-line no-control-regex
  return name.length >= 1 && [...name].length <= 32 && !/[\u0000-\u001f\u007f-\u009f]/.test(name);
}

function submitLogin(event) {
  event.preventDefault();
  const name = $('login-name').value.trim();
  const accessCode = $('login-code').value;
  if (!validName(name)) {
    $('login-error').textContent = LOGIN_REASONS['invalid-name'];
    $('login-name').focus();
    return;
  }
  $('login-error').textContent = '';
  $('login-submit').disabled = true;
  signaling.login({ name, accessCode: accessCode || undefined });
}

function onLogin({ detail: message }) {
  $('login-submit').disabled = false;
  if (message.success !== true) {
    $('login-error').textContent =
      LOGIN_REASONS[message.reason] ?? (typeof message.message === 'string' ? message.message : 'Login failed.');
    if (state.me) {
      // A re-login after a reconnect failed: the name is gone; ask again.
      state.me = null;
      clearSession(room);
      showLoggedIn(false);
    }
    return;
  }
  state.me = message.name;
  if (Array.isArray(message.iceServers)) {
    state.iceServers = message.iceServers;
    // After a server restart the old TURN credentials may be void; an ICE restart needs these.
    state.call?.setIceServers(message.iceServers);
  }
  saveSession(room, { name: state.me, token: message.token, accessCode: signaling.session?.accessCode });
  showLoggedIn(true);
  for (const queued of state.outbox.splice(0)) signaling.send(queued);
  if (state.call) sendMediaState();
}

function showLoggedIn(loggedIn) {
  show($('login-view'), !loggedIn);
  show($('app-view'), loggedIn);
  show($('me'), loggedIn);
  $('me-name').textContent = state.me ?? '';
  if (!loggedIn) $('login-name').focus();
  renderUserList();
}

function logout() {
  if (state.phase === 'in-call') hangUp();
  else if (state.phase === 'calling') cancelCall();
  else if (state.phase === 'ringing') declineCall();
  signaling.logout();
  clearSession(room);
  state.me = null;
  state.users = [];
  showLoggedIn(false);
}

function sendChat(event) {
  event.preventDefault();
  const input = $('chat-input');
  const text = input.value;
  if (!text.trim()) return;
  if ([...text].length > 2000) {
    $('chat-error').textContent = 'Messages are at most 2000 characters.';
    return;
  }
  if (!signaling.send({ type: 'message', text })) {
    $('chat-error').textContent = 'Not connected; the message was not sent.';
    return;
  }
  $('chat-error').textContent = '';
  input.value = '';
}

function onServerError({ detail: message }) {
  if (message.code === 'unknown-target' && state.phase === 'calling') {
    endCall(`${state.peer} is not online.`);
  } else if (message.code === 'too-long') {
    $('chat-error').textContent = 'That message is too long.';
  } else if (message.code === 'rate-limited') {
    notice('Slow down: the server is limiting how fast this page sends.');
  }
}

function renderConnection({ detail }) {
  const words = {
    offline: 'offline',
    connecting: 'connecting…',
    connected: 'connected',
    online: 'online',
    reconnecting: 'reconnecting…',
    replaced: 'signed in elsewhere',
  };
  $('conn-status').textContent = words[detail.state] ?? detail.state;
  $('conn-status').dataset.state = detail.state;
  if (detail.state === 'replaced') {
    endCall('You joined with this name from another tab or device, so this tab was signed out.');
    state.me = null;
    $('login-error').textContent = 'Signed in elsewhere with this name.';
    showLoggedIn(false);
  }
}

// ---------- wiring ----------

function wire() {
  $('room-name').textContent = room;
  $('login-name').value = lastName();
  $('login-form').addEventListener('submit', submitLogin);
  $('logout').addEventListener('click', logout);
  $('chat-form').addEventListener('submit', sendChat);
  $('accept-call').addEventListener('click', acceptCall);
  $('decline-call').addEventListener('click', declineCall);
  $('cancel-call').addEventListener('click', cancelCall);
  $('hangup').addEventListener('click', hangUp);
  $('toggle-mic').addEventListener('click', () => state.call?.setMic(!state.call.micOn));
  $('toggle-camera').addEventListener('click', () =>
    guarded(() => state.call?.setCamera(!state.call.cameraOn), 'camera'),
  );
  $('toggle-screen').addEventListener('click', () =>
    guarded(
      () => (state.call?.screenTrack ? state.call.stopScreenShare() : state.call?.startScreenShare()),
      'screen',
    ),
  );
  $('fullscreen').addEventListener('click', () => {
    $('remote-video').parentElement.requestFullscreen?.().catch(() => {});
  });
  $('camera-select').addEventListener('change', (event) => {
    state.devices.cameraId = event.target.value;
    guarded(() => state.call?.switchCamera(event.target.value), 'camera');
  });
  $('mic-select').addEventListener('change', (event) => {
    state.devices.micId = event.target.value;
    guarded(() => state.call?.switchMic(event.target.value), 'microphone');
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && state.phase === 'ringing') declineCall();
  });

  signaling.addEventListener('state', renderConnection);
  signaling.addEventListener('login', onLogin);
  signaling.addEventListener('userlist', ({ detail }) => {
    const before = state.users;
    state.users = Array.isArray(detail.users) ? detail.users.filter((u) => typeof u === 'string') : [];
    renderUserList();
    if (state.call && state.users.includes(state.peer) && !before.includes(state.peer)) state.call.resync();
  });
  signaling.addEventListener('message', ({ detail }) => {
    if (typeof detail.text !== 'string') return;
    appendChat($('chat-log'), {
      name: String(detail.name ?? '?'),
      text: detail.text,
      date: detail.date,
      mine: detail.name === state.me,
    });
  });
  signaling.addEventListener('ice-servers', ({ detail }) => {
    if (!Array.isArray(detail.iceServers)) return;
    state.iceServers = detail.iceServers;
    state.call?.setIceServers(detail.iceServers);
  });
  signaling.addEventListener('error', onServerError);
  signaling.addEventListener('message-any', ({ detail }) => onRelayMessage(detail));

  // Closing the tab tells the other side at once instead of leaving it ringing or frozen.
  window.addEventListener('pagehide', () => {
    if (state.phase === 'in-call') sendTo(state.peer, { type: 'hang-up' });
    else if (state.phase === 'calling') sendTo(state.peer, { type: 'call-cancel' });
    else if (state.phase === 'ringing') sendTo(state.peer, { type: 'call-decline', reason: 'declined' });
  });

  setPhase('idle');
  const saved = loadSession(room);
  if (saved) {
    $('login-name').value = saved.name;
    signaling.login(saved);
  } else {
    showLoggedIn(false);
  }
}

window.callbox = Object.freeze({
  get room() { return room; },
  get me() { return state.me; },
  get phase() { return state.phase; },
  get peer() { return state.peer; },
  get pc() { return state.call?.pc ?? null; },
  get call() { return state.call; },
  get relayOnly() { return relayOnly; },
  get iceServers() { return state.iceServers; },
  get signalingState() { return signaling.state; },
  /** A snapshot of the call for tests and bug reports: no SDP, no candidates. */
  async snapshot() {
    const pc = state.call?.pc;
    return {
      phase: state.phase,
      peer: state.peer,
      connectionState: pc?.connectionState ?? null,
      iceTransportPolicy: pc?.getConfiguration().iceTransportPolicy ?? null,
      stats: pc ? await summarize(pc) : null,
    };
  },
});

wire();
