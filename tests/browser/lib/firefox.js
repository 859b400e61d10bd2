// Debian's firefox-esr, driven over WebDriver BiDi with puppeteer-core (which never downloads a
// browser here), behind the small part of Playwright's page API that lib/browser.js's helpers
// use (getByTestId/locator → click, fill, textContent, getAttribute, isVisible, waitFor;
// evaluate; screenshot). So login(), call(), accept(), snapshot() and establishCall() drive a
// Firefox page exactly as they drive a Chromium one, and a cross-browser call reads like any
// other call test.

import puppeteer from 'puppeteer-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';

/**
 * Fake camera and microphone without a prompt, host candidates on loopback in the clear (the
 * tests' only interface), autoplay allowed, and every background service that would phone home
 * switched off or pointed at nothing (the tests also run in a loopback-only namespace).
 */
export const FIREFOX_PREFS = {
  'media.navigator.streams.fake': true,
  'media.navigator.permission.disabled': true,
  // Fake devices count as capturing, so ICE offers all host addresses, not only the default one.
  'media.navigator.permission.fake': true,
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.default_address_only': false,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  'full-screen-api.allow-trusted-requests-only': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.http.speculative-parallel-limit': 0,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'browser.search.update': false,
  'geo.provider.network.url': '',
  'app.update.enabled': false,
  'app.update.auto': false,
  'extensions.update.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'extensions.blocklist.enabled': false,
  'services.settings.server': 'http://127.0.0.1:9/',
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.server': '',
  'browser.ping-centre.telemetry': false,
  'browser.newtabpage.activity-stream.feeds.system.topstories': false,
  'browser.newtabpage.activity-stream.feeds.snippets': false,
  'media.gmp-manager.url': '',
  'media.gmp-gmpopenh264.autoupdate': false,
  'media.gmp-gmpopenh264.enabled': false,
  'network.trr.mode': 5,
  'dom.push.connection.enabled': false,
  'dom.push.serverURL': '',
  'extensions.systemAddon.update.enabled': false,
  'browser.topsites.contile.enabled': false,
  'browser.shell.checkDefaultBrowser': false,
  'media.peerconnection.default_iceservers': '[]',
};

/** A headless Firefox with its own temporary HOME and profile, removed by close(). */
export async function launchFirefox({ timeoutMs = 60000 } = {}) {
  const home = mkdtempSync(path.join(tmpdir(), 'callbox-firefox-'));
  const profile = path.join(home, 'profile');
  let browser;
  try {
    browser = await puppeteer.launch({
      browser: 'firefox',
      executablePath: FIREFOX,
      protocol: 'webDriverBiDi',
      headless: true,
      userDataDir: profile,
      extraPrefsFirefox: FIREFOX_PREFS,
      env: { ...process.env, HOME: home, MOZ_CRASHREPORTER_DISABLE: '1' },
      timeout: timeoutMs,
      // CALLBOX_FIREFOX_DUMPIO=1 shows Firefox's own output (with MOZ_LOG=... for ICE logs).
      dumpio: process.env.CALLBOX_FIREFOX_DUMPIO === '1',
    });
  } catch (error) {
    rmSync(home, { recursive: true, force: true });
    throw error;
  }
  return {
    browser,
    version: () => browser.version(),
    /** A page in a fresh user context (its own storage, like another person's browser). */
    async open(url) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      await page.setViewport({ width: 1280, height: 800 });
      const adapted = adapt(page);
      await page.goto(url, { waitUntil: 'load', timeout: 30000 });
      return adapted;
    },
    async close() {
      await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10000))]).catch(() => {});
      // If close() hung, the process is still ours: end it by its PID.
      const proc = browser.process();
      if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Wraps a puppeteer page in the Playwright-shaped subset the shared helpers call. */
function adapt(page, defaultTimeout = 15000) {
  page.setDefaultTimeout(defaultTimeout);
  const consoleLog = [];
  page.on('console', (m) => {
    consoleLog.push(`${m.type()}: ${m.text()}`);
    if (consoleLog.length > 500) consoleLog.shift();
  });
  page.on('pageerror', (e) => consoleLog.push(`pageerror: ${e.message}`));
  return {
    raw: page,
    consoleLog,
    browserName: 'firefox',
    evaluate: (fn, arg) => page.evaluate(fn, arg),
    getByTestId: (id) => element(page, `[data-testid="${id}"]`, defaultTimeout),
    locator: (selector) => element(page, selector, defaultTimeout),
    screenshot: ({ path: file }) => page.screenshot({ path: file }),
    /** Closes the page and its user context (that person's storage). */
    close: () => page.browserContext().close(),
  };
}

function element(page, selector, defaultTimeout) {
  const read = (fn, arg) => page.$eval(selector, fn, arg);
  return {
    click: () => page.locator(selector).setTimeout(defaultTimeout).click(),
    fill: (value) => page.locator(selector).setTimeout(defaultTimeout).fill(value),
    textContent: () => read((el) => el.textContent),
    getAttribute: (name) => read((el, n) => el.getAttribute(n), name),
    evaluate: (fn) => read(fn),
    isVisible: () =>
      page.evaluate((sel) => {
        const el = document.querySelector(sel);
        return Boolean(el && el.getClientRects().length && getComputedStyle(el).visibility !== 'hidden');
      }, selector),
    async waitFor({ state = 'visible', timeout = defaultTimeout } = {}) {
      await page.waitForSelector(selector, { visible: state === 'visible', hidden: state === 'hidden', timeout });
    },
  };
}
