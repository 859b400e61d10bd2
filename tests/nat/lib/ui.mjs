// The person's side of a call (log in, click a name, Accept), taken from the web client's own
// Playwright driver in tests/browser/lib/browser.js, so this test drives the page exactly as
// the client's tests do and follows its selectors when they change. When that driver is not in
// this tree at all the callbox tests skip, loudly; when it is there but broken they fail.

import fs from 'node:fs';
import path from 'node:path';
import { natDir } from './topology.mjs';

const driverPath = path.resolve(natDir, '..', 'browser', 'lib', 'browser.js');

export async function loadDriver() {
  if (!fs.existsSync(driverPath)) return { missing: `${driverPath} is not in this tree (the web client has not landed)` };
  // From here on a problem is a failure, not a skip: the client is there, so the test must run.
  const d = await import(driverPath);
  for (const fn of ['login', 'waitForUser', 'call', 'accept']) {
    if (typeof d[fn] !== 'function') throw new Error(`${driverPath} no longer exports ${fn}(); update tests/nat/lib/ui.mjs`);
  }
  return { login: d.login, waitForUser: d.waitForUser, call: d.call, accept: d.accept };
}
