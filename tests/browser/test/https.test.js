// Served over HTTPS (a self-signed certificate, as in a lab), the page talks to wss:// on the
// same origin and a call still connects: nothing in the page assumes plain http.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { login, establishCall, waitForUser } from '../lib/browser.js';

let env;
before(async () => {
  env = await startEnv({ server: { extra: '[tls]\nenabled = true\nself_signed = true\n' } });
});
after(async () => env?.close());

test('over https the page uses wss on the same origin and calls connect', async () => {
  await withDiagnostics(env, async () => {
    assert.match(env.server.url, /^https:\/\//);
    const alice = await env.open('/');
    const bob = await env.open('/');
    const sockets = [];
    alice.on('websocket', (ws) => sockets.push(ws.url()));
    await login(alice, 'alice');
    await login(bob, 'bob');
    await waitForUser(bob, 'alice');
    assert.ok(sockets.length > 0 && sockets.every((u) => u.startsWith(`wss://${new URL(env.server.url).host}/ws`)), sockets.join());
    await establishCall(alice, bob, 'bob', 'alice');
  });
});
