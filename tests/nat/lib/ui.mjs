// The person's side of a call (log in, click a name, Accept) and the Chromium flags, taken from
// the web client's own Playwright driver so this test drives the page exactly as the client's
// tests do and follows its selectors when they change.

export { login, waitForUser, call, accept, HEADLESS_ARGS } from '../../browser/lib/browser.js';
