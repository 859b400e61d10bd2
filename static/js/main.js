// The page: login, who is online, chat, and the call flow (ring, accept/decline/busy/timeout,
// cancel, hang up) on top of the relay's targeted messages (docs/client.md lists them).
// window.callbox exposes read-only state for the browser tests.

import { Call } from './call.js';
import { initial, step } from './callflow.js';
import { getLocalMedia, listDevices, explainMediaError } from './media.js';
import { describe, summarize } from './stats.js';
import { Signaling } from './signaling.js';
import { roomFromLocation, loadSession, saveSession, clearSession, lastName } from './session.js';
import { $, show, renderUsers, appendChat, fillSelect, setPressed } from './ui.js';
import { readLimits, applyLimits, nameProblem, chatProblem } from './limits.js';

const QUEUE_MAX = 200;
const CALL_TYPES = new Set(['video-offer', 'video-answer', 'new-ice-candidate']);
// What another user may send this page (docs/protocol.md); chat ('message') is shown apart.
const PEER_TYPES = new Set([
  ...CALL_TYPES, 'hang-up', 'leave', 'call-request', 'call-accept', 'call-decline', 'call-cancel', 'call-media',
]);

const room = roomFromLocation();
const relayOnly = new URLSearchParams(location.search).get('relay') === '1';
const signaling = new Signaling(room);

const state = {
  me: null,
  users: [],
  iceServers: [],
  // The call state machine's state (callflow.js): phase idle | calling | ringing | in-call, peer.
  flow: initial(),
  call: null,
  timer: null,
  buffered: [],
  outbox: [],
  // Camera/mic being started (a promise) and, once started, the stream not yet in a call.
  media: null,
  stream: null,
  peerMedia: null,
  devices: { cameraId: null, micId: null },
  // {nameMax, chatMax} from the last login reply (limits.js); null until one arrives.
  limits: null,
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

/** Feeds one event to the call state machine and carries out what it decides. */
function dispatch(event) {
  const before = state.flow;
  const { state: next, actions } = step(before, event, state.me);
  state.flow = next;
  for (const action of actions) perform(action);
  if (before.phase !== next.phase || before.peer !== next.peer) renderPhase();
}

function perform(action) {
  switch (action.do) {
    case 'send':
      return sendTo(action.to, action.message);
    case 'acquire-media': {
      const media = acquireMedia();
      state.media = media;
      media.then((stream) => {
        if (state.media !== media) {
          stream?.getTracks().forEach((t) => t.stop());
          return;
        }
        state.stream = stream;
        dispatch({ type: 'media-ready' });
      });
      return undefined;
    }
    case 'timer':
      clearTimeout(state.timer);
      state.timer = setTimeout(() => dispatch({ type: 'timeout' }), action.ms);
      return undefined;
    case 'begin':
      return beginCall(state.flow.peer, action.polite);
    case 'handle':
      return state.call?.handle(action.message);
    case 'buffer':
      state.buffered.push(action.message);
      return undefined;
    case 'end':
      return endCall(action.notice);
    default:
      return undefined;
  }
}

function renderPhase() {
  const { phase, peer } = state.flow;
  document.body.dataset.phase = phase;
  show($('incoming'), phase === 'ringing');
  show($('outgoing'), phase === 'calling');
  show($('call-controls'), phase === 'in-call');
  document.title = phase === 'ringing' ? `${peer} is calling — callbox` : 'callbox';
  if (phase === 'ringing') {
    notice('');
    $('incoming-text').textContent = `${peer} is calling you`;
    $('accept-call').focus();
  }
  if (phase === 'calling') {
    notice('');
    $('outgoing-text').textContent = `Calling ${peer}…`;
  }
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
    canCall: state.flow.phase === 'idle',
    onCall: (peer) => dispatch({ type: 'click-call', peer }),
    filter: $('user-filter').value,
    count: $('user-count'),
  });
}

/** Stops whatever call activity there is, locally. `why` goes to the notice line. */
function endCall(why) {
  clearTimeout(state.timer);
  state.timer = null;
  if (state.call) state.call.close();
  state.call = null;
  state.buffered = [];
  state.peerMedia = null;
  state.outbox = state.outbox.filter((m) => !CALL_TYPES.has(m.type));
  // Media that was acquired (or is still starting) but never handed to a call.
  state.stream?.getTracks().forEach((t) => t.stop());
  state.stream = null;
  state.media = null;
  $('remote-video').srcObject = null;
  $('local-video').srcObject = null;
  show($('remote-overlay'), false);
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  if (why !== undefined) notice(why);
}

async function acquireMedia() {
  const { stream, problems } = await getLocalMedia({
    audioId: state.devices.micId,
    videoId: state.devices.cameraId,
  });
  if (problems.length) notice(problems.join(' '));
  if (state.flow.phase !== 'idle') $('local-video').srcObject = stream;
  return stream;
}

// ---------- the call ----------

function beginCall(peer, polite) {
  clearTimeout(state.timer);
  state.timer = null;
  const stream = state.stream;
  state.stream = null;
  state.media = null;
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
  refreshDevices();
  if (!polite) call.start();
  for (const message of state.buffered.splice(0)) call.handle(message);
  sendMediaState();
  // Rendered after the phase change this action belongs to.
  queueMicrotask(() => renderCallStatus('new', null));
}

function renderCallStatus(connectionState, summary) {
  const status = $('call-status');
  if (state.flow.phase !== 'in-call') return;
  status.textContent = `${state.flow.peer}: ${describe(connectionState, summary)}`;
  status.dataset.state = connectionState;
  if (connectionState === 'connected' && summary?.pair) {
    status.dataset.path = summary.relayed ? 'relay' : 'direct';
    // The server logs it when the call ends (only this word, nothing of the pair itself).
    if (state.call && state.call.reportedPath !== status.dataset.path) {
      state.call.reportedPath = status.dataset.path;
      sendMediaState();
    }
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
    ...(call.reportedPath ? { path: call.reportedPath } : {}),
  });
}

function renderPeerMedia() {
  const overlay = $('remote-overlay');
  const media = state.peerMedia;
  const words = [];
  const peer = state.flow.peer;
  if (media && !media.video) words.push(`${peer}'s camera is off`);
  if (media && !media.audio) words.push(`${peer} is muted`);
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

// ---------- messages from other users ----------

/** A message another user sent or caused (it carries the server-set `from`). */
function onPeerMessage(raw) {
  // The sender is who the server says, whatever else the message claims.
  const message = { ...raw, name: raw.from };
  if (message.type === 'message') {
    showChat(message);
    return;
  }
  if (!PEER_TYPES.has(message.type)) return;
  if (message.type === 'call-media') {
    if (state.flow.phase === 'in-call' && state.flow.peer === message.name) {
      state.peerMedia = { audio: message.audio !== false, video: message.video !== false };
      renderPeerMedia();
    }
    return;
  }
  dispatch({ type: 'message', message });
}

function showChat(message) {
  if (typeof message.text !== 'string') return;
  appendChat($('chat-log'), {
    name: String(message.name ?? '?'),
    text: message.text,
    date: message.date,
    mine: message.name === state.me,
  });
}

// ---------- login, presence, chat: the server's own events ----------

/** An event the server itself sent (never one with `from`). */
function onSessionEvent(message) {
  switch (message.type) {
    case 'login':
      return onLogin(message);
    case 'userlist':
      return onUserList(message);
    case 'presence':
      return onPresence(message);
    case 'ice-servers':
      if (!Array.isArray(message.iceServers)) return undefined;
      state.iceServers = message.iceServers;
      return state.call?.setIceServers(message.iceServers);
    case 'error':
      return onServerError(message);
    default:
      return undefined;
  }
}

function onUserList(message) {
  setUsers(names(message.users));
}

/** A batch of joins and leaves since the last one: leaves first (a name may leave and come
 * back with another case), then joins. */
function onPresence(message) {
  const users = new Set(state.users);
  for (const name of names(message.left)) users.delete(name);
  for (const name of names(message.joined)) users.add(name);
  setUsers([...users]);
}

function names(list) {
  return Array.isArray(list) ? list.filter((u) => typeof u === 'string') : [];
}

function setUsers(users) {
  const before = state.users;
  state.users = users;
  renderUserList();
  const peer = state.flow.peer;
  if (state.call && state.users.includes(peer) && !before.includes(peer)) state.call.resync();
}

const LOGIN_REASONS = {
  'name-taken': 'That name is already taken in this room. Choose another.',
  'bad-access-code': 'Wrong access code for this room.',
  'already-logged-in': 'You are already logged in.',
};

function submitLogin(event) {
  event.preventDefault();
  const name = $('login-name').value.trim().normalize('NFC');
  const accessCode = $('login-code').value;
  const problem = nameProblem(name, state.limits);
  if (problem) {
    $('login-error').textContent = problem;
    $('login-name').focus();
    return;
  }
  $('login-error').textContent = '';
  $('login-submit').disabled = true;
  signaling.login({ name, accessCode: accessCode || undefined });
}

function onLogin(message) {
  $('login-submit').disabled = false;
  state.limits = readLimits(message) ?? state.limits;
  applyLimits(state.limits, { nameInput: $('login-name'), chatInput: $('chat-input') });
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
  dispatch({ type: 'leaving' });
  dispatch({ type: 'reset' });
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
  const problem = chatProblem(text, state.limits);
  if (problem) {
    $('chat-error').textContent = problem;
    return;
  }
  if (!signaling.send({ type: 'message', text })) {
    $('chat-error').textContent = 'Not connected; the message was not sent.';
    return;
  }
  $('chat-error').textContent = '';
  input.value = '';
}

function onServerError(message) {
  if (message.code === 'unknown-target') {
    dispatch({ type: 'unknown-target' });
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
    dispatch({
      type: 'reset',
      notice: 'You joined with this name from another tab or device, so this tab was signed out.',
    });
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
  $('user-filter').addEventListener('input', renderUserList);
  $('accept-call').addEventListener('click', () => dispatch({ type: 'accept' }));
  $('decline-call').addEventListener('click', () => dispatch({ type: 'decline' }));
  $('cancel-call').addEventListener('click', () => dispatch({ type: 'cancel' }));
  $('hangup').addEventListener('click', () => dispatch({ type: 'hang-up' }));
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
    if (event.key === 'Escape') dispatch({ type: 'decline' });
  });

  signaling.addEventListener('state', renderConnection);
  signaling.addEventListener('session', ({ detail }) => onSessionEvent(detail));
  signaling.addEventListener('peer', ({ detail }) => onPeerMessage(detail));

  // Closing the tab tells the other side at once instead of leaving it ringing or frozen.
  window.addEventListener('pagehide', () => {
    dispatch({ type: 'leaving' });
  });

  renderPhase();
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
  get phase() { return state.flow.phase; },
  get peer() { return state.flow.peer; },
  get pc() { return state.call?.pc ?? null; },
  get call() { return state.call; },
  get relayOnly() { return relayOnly; },
  get iceServers() { return state.iceServers; },
  get signalingState() { return signaling.state; },
  /** A snapshot of the call for tests and bug reports: no SDP, no candidates. */
  async snapshot() {
    const pc = state.call?.pc;
    return {
      phase: state.flow.phase,
      peer: state.flow.peer,
      connectionState: pc?.connectionState ?? null,
      iceTransportPolicy: pc?.getConfiguration().iceTransportPolicy ?? null,
      stats: pc ? await summarize(pc) : null,
    };
  },
});

wire();
