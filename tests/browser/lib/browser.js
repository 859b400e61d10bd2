// Drives callbox's page in Debian's Chromium the way a person would (fill the name, click a
// name to call, click Accept), and reads what the tests assert from window.callbox and
// getStats. Reused by the NAT traversal test, which runs Chromium inside network namespaces by
// passing `executablePath` (a wrapper script) and its own URL.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './server.js';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = path.join(REPO_ROOT, 'test-artifacts');

/** Headless, no background traffic to the closed network, fake camera and microphone. */
export const HEADLESS_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];

/** What these loopback tests add: screen capture without a picker, host candidates on loopback. */
export const CHROMIUM_ARGS = [
  ...HEADLESS_ARGS,
  '--auto-select-desktop-capture-source=Entire screen',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

/** A headless Chromium with a fresh temporary profile. Extra args are appended. */
export async function launchBrowser({ executablePath = CHROMIUM, args = [], timeoutMs = 30000 } = {}) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...args],
    timeout: timeoutMs,
  });
}

/**
 * A new isolated context (its own storage, like another person's browser) on `url`.
 * `initScript`: a file run in the page before its own scripts (e.g. a legacy-API shim).
 */
export async function openPage(browser, url, { viewport = { width: 1280, height: 800 }, initScript } = {}) {
  const context = await browser.newContext({ viewport, ignoreHTTPSErrors: true });
  if (initScript) await context.addInitScript({ path: initScript });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.consoleLog = [];
  page.on('console', (m) => {
    page.consoleLog.push(`${m.type()}: ${m.text()}`);
    if (page.consoleLog.length > 500) page.consoleLog.shift();
  });
  page.on('pageerror', (e) => page.consoleLog.push(`pageerror: ${e.message}`));
  await page.goto(url, { waitUntil: 'load' });
  return page;
}

/** Polls `fn` until it returns a truthy value; throws `what` with the last value after `timeoutMs`. */
export async function waitFor(what, fn, { timeoutMs = 15000, intervalMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastError;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (error) {
      lastError = error;
    }
    await sleep(intervalMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}; last value ${JSON.stringify(last)}${lastError ? `; last error ${lastError.message}` : ''}`,
  );
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Logs in through the form and waits until the page shows the name as ours. */
export async function login(page, name, { accessCode, timeoutMs = 15000 } = {}) {
  await page.getByTestId('login-name').fill(name);
  if (accessCode !== undefined) await page.getByTestId('login-code').fill(accessCode);
  await page.getByTestId('login-submit').click();
  await waitFor(`${name} logged in`, () => page.evaluate(() => window.callbox?.me), { timeoutMs });
  return page;
}

/** Tries to log in and returns the inline error text shown (without waiting for success). */
export async function loginError(page, name, { accessCode } = {}) {
  await page.getByTestId('login-name').fill(name);
  if (accessCode !== undefined) await page.getByTestId('login-code').fill(accessCode);
  await page.getByTestId('login-submit').click();
  return waitFor('a login error', () => page.getByTestId('login-error').textContent());
}

export async function waitForUser(page, name, { timeoutMs = 15000 } = {}) {
  await page.locator(`[data-user="${name}"]`).waitFor({ state: 'visible', timeout: timeoutMs });
}

/** Clicks `callee` in the online list. */
export async function call(page, callee) {
  await waitForUser(page, callee);
  await page.locator(`[data-user="${callee}"]`).click();
}

export async function waitForRinging(page, { from, timeoutMs = 15000 } = {}) {
  await page.getByTestId('incoming').waitFor({ state: 'visible', timeout: timeoutMs });
  if (from) {
    await waitFor(`ringing from ${from}`, async () =>
      (await page.evaluate(() => window.callbox.peer)) === from,
    );
  }
}

export async function accept(page, opts) {
  await waitForRinging(page, opts);
  await page.getByTestId('accept').click();
}

export async function decline(page, opts) {
  await waitForRinging(page, opts);
  await page.getByTestId('decline').click();
}

export async function hangUp(page) {
  await page.getByTestId('hangup').click();
}

export const phase = (page) => page.evaluate(() => window.callbox.phase);

export async function waitForPhase(page, wanted, { timeoutMs = 15000 } = {}) {
  return waitFor(`phase ${wanted}`, async () => (await phase(page)) === wanted, { timeoutMs });
}

/** window.callbox.snapshot(): phase, connectionState and a getStats summary (no SDP). */
export const snapshot = (page) => page.evaluate(() => window.callbox.snapshot());

export async function waitForConnected(page, { timeoutMs = 20000 } = {}) {
  return waitFor(
    'connectionState connected with a selected candidate pair',
    async () => {
      const s = await snapshot(page);
      return s.connectionState === 'connected' && s.stats?.pair ? s : null;
    },
    { timeoutMs },
  );
}

export const framesDecoded = async (page) => (await snapshot(page)).stats?.inbound.video?.framesDecoded ?? 0;

/** Waits until video frames are decoded and still increasing `growMs` later. Returns both counts. */
export async function waitForFrames(page, { min = 1, growMs = 1000, timeoutMs = 20000 } = {}) {
  const first = await waitFor(`framesDecoded >= ${min}`, async () => {
    const n = await framesDecoded(page);
    return n >= min ? n : 0;
  }, { timeoutMs });
  const second = await waitFor(
    `framesDecoded growing past ${first}`,
    async () => {
      const n = await framesDecoded(page);
      return n > first ? n : 0;
    },
    { timeoutMs: growMs + timeoutMs / 2, intervalMs: growMs },
  );
  return { first, second };
}

/** Full call set-up through the UI: caller clicks callee, callee accepts, both decode video. */
export async function establishCall(callerPage, calleePage, calleeName, callerName, opts = {}) {
  const started = Date.now();
  await call(callerPage, calleeName);
  await accept(calleePage, { from: callerName });
  await Promise.all([waitForConnected(callerPage, opts), waitForConnected(calleePage, opts)]);
  await Promise.all([waitForFrames(callerPage, opts), waitForFrames(calleePage, opts)]);
  return { setupMs: Date.now() - started };
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/** On failure, what the page said: kept short for the test output. */
export function consoleTail(page, lines = 30) {
  return (page?.consoleLog ?? []).slice(-lines).join('\n');
}

/**
 * Run in a page (page.evaluate(holdCallRequests)): its WebSocket sends of call-request wait in
 * window.__held.queue until window.__held.release(). Lets a test put two call-requests in
 * flight at once (real glare) however slow either browser is.
 */
export function holdCallRequests() {
  const native = WebSocket.prototype.send;
  const held = { queue: [], release: null };
  window.__held = held;
  held.release = () => {
    WebSocket.prototype.send = native;
    for (const [ws, data] of held.queue.splice(0)) native.call(ws, data);
  };
  WebSocket.prototype.send = function send(data) {
    if (typeof data === 'string' && data.includes('"call-request"')) held.queue.push([this, data]);
    else native.call(this, data);
  };
}

/**
 * Real glare: each page clicks the other's name while its own call-request is held, and both
 * are released once both pages are calling. Resolves when both requests are on their way.
 */
export async function callEachOtherAtOnce(a, aName, b, bName) {
  for (const page of [a, b]) await page.evaluate(holdCallRequests);
  await a.locator(`[data-user="${bName}"]`).click();
  await b.locator(`[data-user="${aName}"]`).click();
  for (const [page, name] of [[a, aName], [b, bName]]) {
    await waitFor(`${name}'s call-request held`, () => page.evaluate(() => window.__held.queue.length === 1));
    const now = await phase(page);
    if (now !== 'calling') throw new Error(`${name} should be calling before the release, is ${now}`);
  }
  await Promise.all([a.evaluate(() => window.__held.release()), b.evaluate(() => window.__held.release())]);
}
