// A lobby of thousands (issue 9): 3000 users held as raw WebSockets (lib/crowd.js) plus two
// Chromium pages in one room. The Online list shows the count but keeps the DOM to a page of
// names, the filter finds one person among thousands as you type, and a call to that person
// goes through.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEnv, withDiagnostics } from '../lib/env.js';
import { joinCrowd } from '../lib/crowd.js';
import { establishCall, waitFor } from '../lib/browser.js';

const CROWD = 3000;
const LIMIT = CROWD + 50;

let env;
let crowd;
before(async () => {
  env = await startEnv({
    server: {
      maxConnectionsPerAddress: LIMIT,
      extra: `[signaling]\nmax_connections_per_ip = ${LIMIT}\nmax_connections = ${LIMIT}\n`,
    },
  });
  const names = Array.from({ length: CROWD }, (_, i) => `guest-${String(i).padStart(5, '0')}`);
  crowd = await joinCrowd(env.server.httpPort, names);
});
after(async () => {
  crowd?.close();
  await env?.close();
});

const rows = (page) => page.locator('[data-testid="user-list"] [data-user]').count();

test('a room of thousands: count shown, few rows rendered, filter finds one, call connects', async () => {
  await withDiagnostics(env, async () => {
    assert.equal(crowd.size, CROWD);
    const [caller, callee] = await env.loggedIn('caller', 'zora-callee');
    const everyone = `(${CROWD + 2})`;
    await waitFor(`count ${everyone}`, async () =>
      (await caller.getByTestId('user-count').textContent()) === everyone, { timeoutMs: 30000 });

    const shown = await rows(caller);
    assert.ok(shown > 0 && shown <= 100, `${shown} rows for ${CROWD + 2} users`);
    assert.match(await caller.getByTestId('user-list-more').textContent(), /more: type a name/);

    // Filtering as you type: a prefix of ten guests, then one exact person.
    await caller.getByTestId('user-filter').fill('guest-0123');
    await waitFor('ten guests match', async () => (await rows(caller)) === 10);
    await caller.getByTestId('user-filter').fill('zora');
    await waitFor('one match', async () => (await rows(caller)) === 1);
    assert.equal(await caller.locator('[data-user="zora-callee"]').count(), 1);
    assert.equal(await caller.getByTestId('user-count').textContent(), everyone, 'count is the room');

    await establishCall(caller, callee, 'zora-callee', 'caller');
  });
});
