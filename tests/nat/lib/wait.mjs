// Bounded waiting: every wait in the NAT test has a deadline and says what it waited for.

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` (async, returns a value or a falsy one) every `everyMs` until it returns a truthy
 * value, and returns that value. Throws after `timeoutMs`, with `what` and the last value seen.
 */
export async function waitFor(what, probe, { timeoutMs = 15_000, everyMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe();
    if (last && last.ok !== false) return last;
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${JSON.stringify(last?.seen ?? last)}`);
    }
    await sleep(everyMs);
  }
}
