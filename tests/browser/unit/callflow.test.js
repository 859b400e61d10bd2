// The page's call-control state machine (static/js/callflow.js) driven without a browser:
// every ringing outcome, glare, late and stray messages, and the tab closing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The page's modules are served as plain .js without a package.json "type"; load the
// self-contained state machine as a module from its source.
const source = readFileSync(fileURLToPath(new URL('../../../static/js/callflow.js', import.meta.url)), 'utf8');
const { initial, step, RING_MS, CALLER_WAIT_MS } = await import(`data:text/javascript,${encodeURIComponent(source)}`);

/** Runs events in order; returns the final state and every action taken. */
function run(me, events, state = initial()) {
  const actions = [];
  for (const event of events) {
    const result = step(state, event, me);
    state = result.state;
    actions.push(...result.actions);
  }
  return { state, actions };
}

const msg = (type, name, extra = {}) => ({ type: 'message', message: { type, name, target: 'x', ...extra } });
const sent = (actions) => actions.filter((a) => a.do === 'send').map((a) => [a.to, a.message.type, a.message.reason].filter(Boolean).join(' '));
const last = (actions, what) => actions.filter((a) => a.do === what).at(-1);

test('caller: media first, then call-request, then the offer side starts on accept', () => {
  let r = run('ann', [{ type: 'click-call', peer: 'bob' }]);
  assert.equal(r.state.phase, 'calling');
  assert.deepEqual(sent(r.actions), [], 'nothing is sent before the camera is ready');
  assert.ok(last(r.actions, 'acquire-media'));
  r = run('ann', [{ type: 'media-ready' }], r.state);
  assert.deepEqual(sent(r.actions), ['bob call-request']);
  assert.equal(last(r.actions, 'timer').ms, CALLER_WAIT_MS);
  r = run('ann', [msg('call-accept', 'bob')], r.state);
  assert.equal(r.state.phase, 'in-call');
  assert.deepEqual(last(r.actions, 'begin'), { do: 'begin', polite: false });
});

test('callee: rings 30 s, accept gets media then answers call-accept as the polite side', () => {
  let r = run('bob', [msg('call-request', 'ann')]);
  assert.equal(r.state.phase, 'ringing');
  assert.equal(last(r.actions, 'timer').ms, RING_MS);
  r = run('bob', [{ type: 'accept' }], r.state);
  assert.deepEqual(sent(r.actions), []);
  r = run('bob', [{ type: 'timeout' }], r.state);
  assert.equal(r.state.phase, 'ringing', 'a timeout while the camera starts does not drop an accepted call');
  r = run('bob', [{ type: 'media-ready' }], r.state);
  assert.equal(r.state.phase, 'in-call');
  assert.deepEqual(last(r.actions, 'begin'), { do: 'begin', polite: true });
  assert.deepEqual(sent(r.actions), ['ann call-accept']);
});

test('declined, busy and unanswered calls each tell the caller in words', () => {
  const calling = run('ann', [{ type: 'click-call', peer: 'bob' }, { type: 'media-ready' }]).state;
  for (const [reason, words] of [['declined', /bob declined/], ['busy', /bob is busy/], ['timeout', /bob did not answer/]]) {
    const r = run('ann', [msg('call-decline', 'bob', { reason })], calling);
    assert.equal(r.state.phase, 'idle');
    assert.match(last(r.actions, 'end').notice, words);
  }
});

test('the callee times out after ringing and says it missed the call', () => {
  const r = run('bob', [msg('call-request', 'ann'), { type: 'timeout' }]);
  assert.equal(r.state.phase, 'idle');
  assert.deepEqual(sent(r.actions), ['ann call-decline timeout']);
  assert.match(last(r.actions, 'end').notice, /Missed call from ann/);
});

test('anyone calling during a call, a ring or an outgoing call gets busy', () => {
  const inCall = run('bob', [msg('call-request', 'ann'), { type: 'accept' }, { type: 'media-ready' }]).state;
  const ringing = run('bob', [msg('call-request', 'ann')]).state;
  const calling = run('bob', [{ type: 'click-call', peer: 'dan' }]).state;
  for (const state of [inCall, ringing, calling]) {
    const r = run('bob', [msg('call-request', 'cat')], state);
    assert.deepEqual(sent(r.actions), ['cat call-decline busy']);
    assert.equal(r.state.phase, state.phase, 'the current call is untouched');
    assert.equal(r.state.peer, state.peer);
  }
});

test('glare: both call each other, the later name becomes the callee, exactly one call', () => {
  // ann sorts first and stays the caller; bob's request to ann is ignored by ann.
  const ann = run('ann', [{ type: 'click-call', peer: 'bob' }, { type: 'media-ready' }, msg('call-request', 'bob')]);
  assert.equal(ann.state.phase, 'calling');
  assert.deepEqual(sent(ann.actions), ['bob call-request']);
  // bob's camera is still starting when ann's request lands: he accepts once it is ready.
  let bob = run('Bob', [{ type: 'click-call', peer: 'ann' }, msg('call-request', 'ann')]);
  assert.equal(bob.state.phase, 'calling');
  bob = run('Bob', [{ type: 'media-ready' }], bob.state);
  assert.equal(bob.state.phase, 'in-call');
  assert.deepEqual(sent(bob.actions), ['ann call-accept'], 'no call-request of his own goes out');
  assert.deepEqual(last(bob.actions, 'begin'), { do: 'begin', polite: true });
});

test('cancel, hang-up and leave end the call with the right words on the other side', () => {
  const ringing = run('bob', [msg('call-request', 'ann')]).state;
  assert.match(last(run('bob', [msg('call-cancel', 'ann')], ringing).actions, 'end').notice, /Missed call from ann/);
  const inCall = run('bob', [{ type: 'accept' }, { type: 'media-ready' }], ringing).state;
  for (const type of ['hang-up', 'leave']) {
    const r = run('bob', [msg(type, 'ann')], inCall);
    assert.equal(r.state.phase, 'idle');
    assert.match(last(r.actions, 'end').notice, /ann hung up/);
  }
  const strangers = run('bob', [msg('hang-up', 'cat'), msg('call-cancel', 'cat')], inCall);
  assert.equal(strangers.state.phase, 'in-call', 'messages from others do not end our call');
});

test('a late accept after we cancelled is answered with hang-up so the callee does not wait', () => {
  const r = run('ann', [{ type: 'click-call', peer: 'bob' }, { type: 'media-ready' }, { type: 'cancel' }, msg('call-accept', 'bob')]);
  assert.equal(r.state.phase, 'idle');
  assert.deepEqual(sent(r.actions), ['bob call-request', 'bob call-cancel', 'bob hang-up']);
});

test('negotiation messages reach only the running call with that peer; a bare offer rings', () => {
  const inCall = run('bob', [msg('call-request', 'ann'), { type: 'accept' }, { type: 'media-ready' }]).state;
  let r = run('bob', [msg('new-ice-candidate', 'ann'), msg('video-offer', 'cat')], inCall);
  assert.deepEqual(r.actions.map((a) => a.do), ['handle']);
  // MDN's demo sends video-offer without ringing first: it rings, the offer waits for Accept.
  r = run('bob', [msg('video-offer', 'ann'), msg('new-ice-candidate', 'ann')]);
  assert.equal(r.state.phase, 'ringing');
  assert.deepEqual(r.actions.filter((a) => a.do === 'buffer').length, 2);
});

test('closing the tab tells the other side in every phase', () => {
  const calling = run('ann', [{ type: 'click-call', peer: 'bob' }, { type: 'media-ready' }]).state;
  assert.deepEqual(sent(run('ann', [{ type: 'leaving' }], calling).actions), ['bob call-cancel']);
  const ringing = run('bob', [msg('call-request', 'ann')]).state;
  assert.deepEqual(sent(run('bob', [{ type: 'leaving' }], ringing).actions), ['ann call-decline declined']);
  const inCall = run('bob', [{ type: 'accept' }, { type: 'media-ready' }], ringing).state;
  assert.deepEqual(sent(run('bob', [{ type: 'leaving' }], inCall).actions), ['ann hang-up']);
});

test('no calling yourself, no second call, an unknown target ends an outgoing call', () => {
  assert.equal(run('ann', [{ type: 'click-call', peer: 'ann' }]).state.phase, 'idle');
  const calling = run('ann', [{ type: 'click-call', peer: 'bob' }]).state;
  assert.equal(run('ann', [{ type: 'click-call', peer: 'cat' }], calling).state.peer, 'bob');
  const r = run('ann', [{ type: 'unknown-target' }], calling);
  assert.equal(r.state.phase, 'idle');
  assert.match(last(r.actions, 'end').notice, /bob is not online/);
});
