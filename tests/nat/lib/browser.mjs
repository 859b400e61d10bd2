// Headless Debian Chromium inside a client namespace, with the test's instrumentation injected
// into every page. Nothing is downloaded: the executable is a wrapper around /usr/bin/chromium.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { instrument } from './instrument.js';
import { HEADLESS_ARGS } from './ui.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const wrapper = path.join(here, '..', 'chromium-in-netns.sh');

/**
 * Starts Chromium in namespace `netns`; returns { browser, context, page, pid, close }.
 * `origin` is the callbox origin; its self-signed certificate is accepted.
 * `policy` is the ICE-server policy applied inside the page (see instrument.js).
 */
export async function launchIn(netns, { policy = 'all', name = netns } = {}) {
  const pidFile = path.join(os.tmpdir(), `nat-chromium-${process.pid}-${netns}-${Date.now()}.pid`);
  const readPid = () => {
    try { return Number(fs.readFileSync(pidFile, 'utf8').trim()) || null; } catch { return null; }
  };
  const killPid = () => {
    const pid = readPid();
    if (pid) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
    }
    fs.rmSync(pidFile, { force: true });
  };
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: wrapper,
      headless: false, // the wrapper gets --headless=new explicitly below
      timeout: 20_000,
      env: { ...process.env, NAT_NETNS: netns, NAT_PIDFILE: pidFile },
      args: [
        ...HEADLESS_ARGS,
        '--ignore-certificate-errors',
      ],
    });
  } catch (err) {
    killPid();
    throw err;
  }
  const pid = readPid();
  try {
    return await setUp(browser, { policy, name, pid, killPid });
  } catch (err) {
    await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    killPid();
    throw err;
  }
}

async function setUp(browser, { policy, name, pid, killPid }) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1000, height: 700 } });
  await context.grantPermissions(['camera', 'microphone']).catch(() => {});
  await context.addInitScript(instrument, policy);
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const log = [];
  page.on('console', (m) => log.push(`[${name}] ${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`[${name}] pageerror: ${e.message}`));
  const close = async () => {
    await Promise.race([browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 5000))]);
    killPid();
  };
  return { browser, context, page, pid, log, close };
}

/** The instrumentation's view of the page's current call (see instrument.js snapshot()). */
export function snapshot(page) {
  return page.evaluate(() => window.__nat?.snapshot() ?? null);
}

/**
 * Chromium in two namespaces at once. Both are added to `into` as soon as they start, so the
 * caller's cleanup closes one that started even when the other failed.
 */
export async function launchPair([nsA, nsB], { policy = 'all', names = ['alice', 'bob'] } = {}, into = []) {
  const launched = await Promise.allSettled([
    launchIn(nsA, { policy, name: names[0] }),
    launchIn(nsB, { policy, name: names[1] }),
  ]);
  for (const r of launched) if (r.status === 'fulfilled') into.push(r.value);
  const failed = launched.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return launched.map((r) => r.value);
}
