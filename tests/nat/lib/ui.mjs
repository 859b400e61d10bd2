// The person's side of a call (log in, click a name, Accept), taken from the web client's own
// Playwright driver in tests/browser/lib/browser.js, so this test drives the page exactly as
// the client's tests do and follows its selectors when they change. Resolves to null (and the
// callbox tests skip, loudly) when that driver is not in this tree yet.

import fs from 'node:fs';
import path from 'node:path';
import { natDir } from './topology.mjs';

const driverPath = path.resolve(natDir, '..', 'browser', 'lib', 'browser.js');

export async function loadDriver() {
  if (!fs.existsSync(driverPath)) return { missing: `${driverPath} is not in this tree (the web client has not landed)` };
  try {
    const d = await import(driverPath);
    for (const fn of ['login', 'call', 'accept']) {
      if (typeof d[fn] !== 'function') return { missing: `${driverPath} does not export ${fn}()` };
    }
    return { login: d.login, call: d.call, accept: d.accept };
  } catch (err) {
    return { missing: `cannot load ${driverPath}: ${err.message} (npm ci in tests/browser?)` };
  }
}
