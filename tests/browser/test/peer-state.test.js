// Nothing another user sends can drive a page's own session (issue 13): a room member who is not
// in alice's call opens a raw WebSocket and sends her the shapes of the server's own events
// (her connection state, a user list, a login reply, an error, fresh credentials), with `from`
// spoofed, and call messages posing as her partner. Her page must stay logged in and her call
// must go on. A second test drives the page's signaling module directly: it hands messages with
// `from` only to peer handlers and those without only to session handlers.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { establishCall, snapshot, waitFor, waitForFrames } from '../lib/browser.js';

let env;
let alice;
let bob;

before(async () => {
  env = await startEnv();
  [alice, bob] = await env.loggedIn('alice', 'bob');
  await establishCall(alice, bob, 'bob', 'alice');
});
after(async () => env?.close());

/** A raw WebSocket from a page of our origin, logged in as `name`; frames it gets are kept. */
async function rawClient(name) {
  const page = await env.open('/');
  await page.evaluate(async (login) => {
    const ws = new WebSocket(`ws://${location.host}/ws`);
    window.raw = { ws, got: [] };
    ws.onmessage = (event) => window.raw.got.push(JSON.parse(event.data));
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = reject;
    });
    ws.send(JSON.stringify({ type: 'login', name: login }));
  }, name);
  await waitFor(`${name} logged in on the raw socket`, () =>
    page.evaluate(() => window.raw.got.some((m) => m.type === 'login' && m.success === true)),
  );
  return page;
}

const SPOOFS = [
  // The server's own events, aimed at alice, some with `from` filled in by the sender.
  { frame: { type: 'state', target: 'alice', state: 'replaced' }, code: 'unknown-type' },
  { frame: { type: 'state', target: 'alice', state: 'offline', from: 'server' }, code: 'unknown-type' },
  { frame: { type: 'replaced', target: 'alice' }, code: 'unknown-type' },
  { frame: { type: 'session', target: 'alice', from: 'server' }, code: 'unknown-type' },
  { frame: { type: 'userlist', target: 'alice', users: [], from: 'server' }, code: 'forbidden-type' },
  { frame: { type: 'error', target: 'alice', code: 'replaced', from: 'server' }, code: 'forbidden-type' },
  { frame: { type: 'ice-servers', target: 'alice', iceServers: [], ttl: 1, from: 'server' }, code: 'forbidden-type' },
  { frame: { type: 'login', target: 'alice', success: false, reason: 'name-taken', from: 'server' }, login: 'already-logged-in' },
  // Call messages posing as bob: the server stamps them with mallory's name, so alice's call,
  // which is with bob, ignores them.
  { frame: { type: 'hang-up', target: 'alice', name: 'bob', from: 'bob' } },
  { frame: { type: 'leave', name: 'alice', from: 'bob' } },
  { frame: { type: 'call-cancel', target: 'alice', name: 'bob', from: 'bob' } },
  { frame: { type: 'video-offer', target: 'alice', name: 'bob', from: 'bob', sdp: { type: 'offer', sdp: 'v=0 bogus' } } },
];

test("a room member's spoofed server events and call messages do nothing to alice", async () => {
  await withDiagnostics(env, async () => {
    const mallory = await rawClient('mallory');
    await waitFor('alice lists mallory', async () => (await alice.locator('[data-user="mallory"]').count()) === 1);
    await mallory.evaluate((frames) => {
      window.raw.got = [];
      for (const frame of frames) window.raw.ws.send(JSON.stringify(frame));
      window.raw.ws.send(JSON.stringify({ type: 'message', text: 'marker after the spoofs' }));
    }, SPOOFS.map((s) => s.frame));

    // Frames to one user arrive in order: once alice shows the marker, she has had the rest.
    await waitFor('alice shows the marker chat line', () =>
      alice.evaluate(() => [...document.querySelectorAll('#chat-log .text')].some((e) => e.textContent === 'marker after the spoofs')),
    );
    const replies = await mallory.evaluate(() => window.raw.got);
    const errors = replies.filter((m) => m.type === 'error').map((m) => m.code);
    const expected = SPOOFS.filter((s) => s.code).map((s) => s.code);
    assert.deepEqual(errors, expected, JSON.stringify(replies));
    assert.equal(replies.find((m) => m.type === 'login')?.reason, 'already-logged-in');

    const seen = await alice.evaluate(() => ({
      me: window.callbox.me,
      signalingState: window.callbox.signalingState,
      phase: window.callbox.phase,
      peer: window.callbox.peer,
      loginVisible: !document.getElementById('login-view').hidden,
      connStatus: document.getElementById('conn-status').dataset.state,
      users: [...document.querySelectorAll('#user-list [data-user]')].map((b) => b.dataset.user),
    }));
    assert.deepEqual(seen, {
      me: 'alice',
      signalingState: 'online',
      phase: 'in-call',
      peer: 'bob',
      loginVisible: false,
      connStatus: 'online',
      users: ['alice', 'bob', 'mallory'],
    });
    const call = await snapshot(alice);
    assert.equal(call.connectionState, 'connected');
    // The call goes on: video keeps arriving on both sides.
    await Promise.all([waitForFrames(alice), waitForFrames(bob)]);
    assert.equal(await bob.evaluate(() => window.callbox.phase), 'in-call');
  });
});

test('the signaling module hands from-messages only to peers and the rest only to the session', async () => {
  await withDiagnostics(env, async () => {
    const page = await env.open('/');
    const result = await page.evaluate(async () => {
      const { Signaling } = await import('/js/signaling.js');
      const s = new Signaling('lobby');
      const events = [];
      for (const type of ['peer', 'session', 'state', 'replaced']) {
        s.addEventListener(type, ({ detail }) => events.push([type, detail.type ?? detail.state]));
      }
      const feed = (message) => {
        events.length = 0;
        s.onMessage(message);
        return { events: [...events], loggedIn: s.loggedIn, state: s.state };
      };
      return {
        relayedState: feed({ type: 'state', state: 'replaced', from: 'mallory' }),
        relayedLogin: feed({ type: 'login', success: true, name: 'mallory', token: 't', from: 'mallory' }),
        relayedUserlist: feed({ type: 'userlist', users: [], from: 'mallory' }),
        emptyFrom: feed({ type: 'hang-up', from: '' }),
        bareState: feed({ type: 'state', state: 'replaced' }),
        bareHangUp: feed({ type: 'hang-up', name: 'bob' }),
        userlist: feed({ type: 'userlist', users: ['a'] }),
        login: feed({ type: 'login', success: true, name: 'a', token: 't' }),
      };
    });
    const offline = { loggedIn: false, state: 'offline' };
    assert.deepEqual(result.relayedState, { events: [['peer', 'state']], ...offline });
    assert.deepEqual(result.relayedLogin, { events: [['peer', 'login']], ...offline });
    assert.deepEqual(result.relayedUserlist, { events: [['peer', 'userlist']], ...offline });
    assert.deepEqual(result.emptyFrom, { events: [], ...offline });
    assert.deepEqual(result.bareState, { events: [], ...offline });
    assert.deepEqual(result.bareHangUp, { events: [], ...offline });
    assert.deepEqual(result.userlist, { events: [['session', 'userlist']], ...offline });
    assert.deepEqual(result.login, { events: [['state', 'online'], ['session', 'login']], loggedIn: true, state: 'online' });
  });
});
