// The call-control state machine as plain data: (state, event) -> (state, actions). No DOM, no
// sockets, no timers, so node's test runner drives it directly (tests/browser/unit/) and the
// page only carries out the actions. Messages are those of docs/protocol.md ("call-*",
// "hang-up"/"leave", and MDN's video-offer for clients that do not ring first).

export const RING_MS = 30_000;
// The caller waits a little longer than the callee rings, so "did not answer" normally comes
// from the callee's own timeout.
export const CALLER_WAIT_MS = 35_000;
const BUFFER_MAX = 200;

/** idle | calling (we rang someone) | ringing (someone rings us) | in-call. */
export function initial() {
  return { phase: 'idle', peer: null, mediaReady: false, accepting: false, glare: false, buffered: 0 };
}

const NEGOTIATION = new Set(['video-offer', 'video-answer', 'new-ice-candidate']);

/**
 * One step. `me` is our logged-in name. Actions are objects with `do`:
 *   send {to, message}     send a targeted message
 *   acquire-media          start camera/microphone; report back with {type:'media-ready'}
 *   timer {ms}             (re)start the single call timer; report back with {type:'timeout'}
 *   begin {polite}         create the RTCPeerConnection with the acquired media
 *   handle {message}       give a negotiation message to the running call
 *   buffer {message}       keep it for the call about to start (callee still ringing)
 *   end {notice}           stop everything (media, call, timer) and show `notice`
 */
export function step(state, event, me) {
  const s = { ...state };
  const out = [];
  const send = (to, message) => out.push({ do: 'send', to, message });
  const end = (notice) => {
    out.push({ do: 'end', notice });
    return { state: initial(), actions: out };
  };
  const done = () => ({ state: s, actions: out });

  switch (event.type) {
    case 'click-call':
      if (s.phase !== 'idle' || !event.peer || event.peer === me) return done();
      Object.assign(s, initial(), { phase: 'calling', peer: event.peer });
      out.push({ do: 'acquire-media' });
      return done();

    case 'media-ready':
      if (s.phase === 'calling' && !s.mediaReady) {
        s.mediaReady = true;
        if (s.glare) return beginAsCallee(s, out, send);
        send(s.peer, { type: 'call-request' });
        out.push({ do: 'timer', ms: CALLER_WAIT_MS });
      } else if (s.phase === 'ringing' && s.accepting && !s.mediaReady) {
        s.mediaReady = true;
        return beginAsCallee(s, out, send);
      }
      return done();

    case 'accept':
      if (s.phase !== 'ringing' || s.accepting) return done();
      s.accepting = true;
      out.push({ do: 'acquire-media' });
      return done();

    case 'decline':
      if (s.phase !== 'ringing') return done();
      send(s.peer, { type: 'call-decline', reason: 'declined' });
      return end('');

    case 'cancel':
      if (s.phase !== 'calling') return done();
      send(s.peer, { type: 'call-cancel' });
      return end('Call cancelled.');

    case 'hang-up':
      if (s.phase !== 'in-call') return done();
      send(s.peer, { type: 'hang-up' });
      return end('Call ended.');

    case 'leaving':
      // The tab is closing: tell the other side now rather than leave it ringing or frozen.
      if (s.phase === 'in-call') send(s.peer, { type: 'hang-up' });
      else if (s.phase === 'calling') send(s.peer, { type: 'call-cancel' });
      else if (s.phase === 'ringing') send(s.peer, { type: 'call-decline', reason: 'declined' });
      return done();

    case 'timeout':
      if (s.phase === 'ringing' && !s.accepting) {
        send(s.peer, { type: 'call-decline', reason: 'timeout' });
        return end(`Missed call from ${s.peer}.`);
      }
      if (s.phase === 'calling') {
        send(s.peer, { type: 'call-cancel' });
        return end(`${s.peer} did not answer.`);
      }
      return done();

    case 'reset':
      // Signed out (log out, or the name was taken over): end locally, say `notice`.
      return end(event.notice);

    case 'unknown-target':
      if (s.phase === 'calling') return end(`${s.peer} is not online.`);
      return done();

    case 'message':
      return onMessage(s, event.message, me, out, send, end, done);

    default:
      return done();
  }
}

function beginAsCallee(s, out, send) {
  s.phase = 'in-call';
  s.accepting = false;
  s.glare = false;
  out.push({ do: 'begin', polite: true });
  send(s.peer, { type: 'call-accept' });
  return { state: s, actions: out };
}

function onMessage(s, message, me, out, send, end, done) {
  const from = typeof message?.name === 'string' ? message.name : null;
  if (!from) return done();
  const withPeer = s.peer === from;
  switch (message.type) {
    case 'call-request':
      if (s.phase === 'idle') {
        Object.assign(s, initial(), { phase: 'ringing', peer: from });
        out.push({ do: 'timer', ms: RING_MS });
        return done();
      }
      if (s.phase === 'calling' && withPeer) {
        // Both called each other at once: the name that sorts later answers, the other stays
        // caller. Both sides compute the same answer, so exactly one call results.
        if (me.toLowerCase() > from.toLowerCase()) {
          if (s.mediaReady) return beginAsCallee(s, out, send);
          s.glare = true;
        }
        return done();
      }
      if (s.phase === 'in-call' && withPeer) return done();
      send(from, { type: 'call-decline', reason: 'busy' });
      return done();

    case 'call-accept':
      if (s.phase === 'calling' && withPeer && s.mediaReady) {
        s.phase = 'in-call';
        out.push({ do: 'begin', polite: false });
        return done();
      }
      // An accept for a call we no longer place: say so, so the other side does not wait.
      if (!(s.phase === 'in-call' && withPeer)) send(from, { type: 'hang-up' });
      return done();

    case 'call-decline':
      if (s.phase === 'calling' && withPeer) {
        const why = {
          busy: `${from} is busy in another call.`,
          timeout: `${from} did not answer.`,
        }[message.reason];
        return end(why ?? `${from} declined the call.`);
      }
      return done();

    case 'call-cancel':
      if (s.phase === 'ringing' && withPeer) return end(`Missed call from ${from}.`);
      if (s.phase === 'in-call' && withPeer) return end(`${from} ended the call.`);
      return done();

    case 'hang-up':
    case 'leave':
      if (!withPeer) return done();
      if (s.phase === 'in-call') return end(`${from} hung up.`);
      if (s.phase === 'ringing') return end(`Missed call from ${from}.`);
      if (s.phase === 'calling') return end(`${from} is not available.`);
      return done();

    default:
      if (!NEGOTIATION.has(message.type)) return done();
      if (s.phase === 'in-call' && withPeer) {
        out.push({ do: 'handle', message });
      } else if (s.phase === 'ringing' && withPeer) {
        if (s.buffered < BUFFER_MAX) {
          s.buffered += 1;
          out.push({ do: 'buffer', message });
        }
      } else if (s.phase === 'idle' && message.type === 'video-offer') {
        // A client that skips call-request (MDN's demo): ring for it, answer its offer on Accept.
        Object.assign(s, initial(), { phase: 'ringing', peer: from, buffered: 1 });
        out.push({ do: 'buffer', message });
        out.push({ do: 'timer', ms: RING_MS });
      }
      return done();
  }
}
