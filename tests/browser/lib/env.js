// One test file's world: a callbox process and a Chromium, both started for the file and both
// stopped in its `after` hook (by PID / through the browser handle), also when a test failed.

import { startCallbox } from './server.js';
import { launchBrowser, openPage, consoleTail, login } from './browser.js';

export async function startEnv({ server: serverOptions = {}, browser: browserOptions = {} } = {}) {
  const server = await startCallbox(serverOptions);
  let browser;
  try {
    browser = await launchBrowser(browserOptions);
  } catch (error) {
    await server.cleanup();
    throw error;
  }
  const env = {
    server,
    browser,
    pages: [],
    /**
     * Opens callbox's page at `rel` (e.g. "/", "/r/room?relay=1"; an absolute URL opens that)
     * in a fresh context. `options` go to openPage (e.g. initScript).
     */
    async open(rel = '/', options = {}) {
      const page = await openPage(browser, new URL(rel, server.url).href, options);
      env.pages.push(page);
      return page;
    },
    /** One lobby page per name, each logged in through the form; resolves to the pages. */
    async loggedIn(...names) {
      const pages = [];
      for (const name of names) pages.push(await env.open('/'));
      for (const [i, name] of names.entries()) await login(pages[i], name);
      return pages;
    },
    /** Page consoles and the server's log tail, for a failure message. */
    diagnostics() {
      const pages = env.pages.map((p, i) => `--- page ${i} console\n${consoleTail(p)}`).join('\n');
      return `${pages}\n--- callbox log tail\n${server.log.slice(-40).join('')}`;
    },
    async close() {
      await Promise.race([browser.close(), new Promise((r) => setTimeout(r, 10000))]).catch(() => {});
      await server.cleanup();
    },
  };
  return env;
}

/** Runs `body`; on failure adds the diagnostics to the error so CI output shows why. */
export async function withDiagnostics(env, body) {
  try {
    return await body();
  } catch (error) {
    error.message += `\n${env.diagnostics()}`;
    throw error;
  }
}
