// The namespaces (netns.sh) seen from the node test: their names and addresses, commands run
// inside them, and processes started inside them, each remembered by PID so the test stops
// exactly what it started, also when an assertion fails halfway.

import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const natDir = path.join(here, '..');
const netnsSh = path.join(natDir, 'netns.sh');

export const prefix = process.env.NAT_PREFIX || `cbxnat${process.pid % 100000}`;
export const ns = {
  pub: `${prefix}-pub`,
  routerA: `${prefix}-ra`,
  routerB: `${prefix}-rb`,
  clientA: `${prefix}-ca`,
  clientB: `${prefix}-cb`,
};
// The dual stage's namespaces (netns.sh up dual): the same five plus a second IPv6-only client
// behind its own NAT66.
export const nsDual = { ...ns, routerC: `${prefix}-rc`, clientC: `${prefix}-cc` };
export const addr = {
  callbox: '203.0.113.1',
  routerA: '203.0.113.2',
  routerB: '198.51.100.2',
  clientA: '10.1.0.2',
  clientB: '10.2.0.2',
};
// What callbox's config must allow as TURN peers: exactly the "public" documentation ranges.
export const publicRanges = ['203.0.113.0/24', '198.51.100.0/24'];

// The dual stage (netns.sh up dual): A and C IPv6-only behind NAT66, B IPv4-only behind NAT44,
// callbox dual-stack under one name.
export const dual = {
  host: 'callbox.test',
  callbox4: '203.0.113.1',
  callbox6: '2001:db8:1::1',
  routerA: '2001:db8:a::2',
  routerB: '198.51.100.2',
  routerC: '2001:db8:c::2',
  clientA: 'fd00:a::2',
  clientB: '10.2.0.2',
  clientC: 'fd00:c::2',
  publicRanges: ['203.0.113.0/24', '198.51.100.0/24', '2001:db8::/32'],
};

let signalsHooked = false;

/** netns.sh with our prefix: up, down, block-udp-turn, only-tcp PORT, open, nat-mode MODE. */
export function netns(...args) {
  if (args[0] === 'up' && !signalsHooked) {
    // Interrupted (Ctrl-C, timeout): stop what we started and remove the namespaces before exiting.
    signalsHooked = true;
    for (const sig of ['SIGINT', 'SIGTERM']) {
      process.once(sig, () => {
        stopAll().finally(() => {
          try { netns('down'); } catch { /* run.sh's trap tries again */ }
          process.exit(sig === 'SIGINT' ? 130 : 143);
        });
      });
    }
  }
  execFileSync('bash', [netnsSh, ...args], {
    env: { ...process.env, NAT_PREFIX: prefix },
    stdio: ['ignore', 'inherit', 'inherit'],
    timeout: 30_000,
  });
}

/** Runs a short command inside a namespace and returns its stdout. */
export function runIn(netnsName, cmd, args, { timeout = 10_000 } = {}) {
  return execFileSync('ip', ['netns', 'exec', netnsName, cmd, ...args], { timeout, encoding: 'utf8' });
}

const started = new Set();

/**
 * Starts a long-running process inside a namespace. Resolves once `ready` (a regexp) appears on
 * its stdout or stderr, within `timeoutMs`. Returns { child, pid, output(), stop() }.
 */
export function startIn(netnsName, cmd, args, { ready, timeoutMs = 15_000, env } = {}) {
  // `ip netns exec` execs the command, so the PID we get is the command's own.
  const child = spawn('ip', ['netns', 'exec', netnsName, cmd, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  started.add(child);
  let text = '';
  const stop = () => stopChild(child);
  const handle = { child, pid: child.pid, output: () => text, stop };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`${cmd} in ${netnsName} not ready within ${timeoutMs} ms; output:\n${text}`));
    }, timeoutMs);
    const onData = (d) => {
      text += d;
      if (text.length > 200_000) text = text.slice(-100_000);
      if (ready && ready.test(text)) {
        clearTimeout(timer);
        resolve(handle);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code, signal) => {
      started.delete(child);
      clearTimeout(timer);
      reject(new Error(`${cmd} in ${netnsName} exited (${code ?? signal}) before it was ready; output:\n${text}`));
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (!ready) {
      clearTimeout(timer);
      resolve(handle);
    }
  });
}

/** SIGTERM, then SIGKILL after 3 s, by PID; resolves when the process has exited. */
export function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => {
      try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    }, 3000);
    child.once('exit', () => {
      clearTimeout(kill);
      started.delete(child);
      resolve();
    });
    try { process.kill(child.pid, 'SIGTERM'); } catch { resolve(); }
  });
}

/** Stops everything startIn started that is still running. */
export async function stopAll() {
  await Promise.all([...started].map(stopChild));
}
