// Starts and stops a real callbox binary for a test: a temp config with loopback listeners
// and free ports, the URL parsed from the "callbox is running: open URL" line, and stop/kill
// that only ever signal the process this module spawned (by PID).

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const CALLBOX_BIN = process.env.CALLBOX_BIN ?? path.join(REPO_ROOT, 'target/debug/callbox');

/** A TCP port that is free on `host` right now (and, if `udp`, free for UDP too). */
export async function freePort({ udp = false, host = '127.0.0.1' } = {}) {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const port = await new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, host, () => {
        const { port: p } = server.address();
        server.close(() => resolve(p));
      });
    });
    if (!udp) return port;
    const ok = await new Promise((resolve) => {
      const socket = dgram.createSocket('udp4');
      socket.once('error', () => resolve(false));
      socket.bind(port, host, () => socket.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port found in 20 attempts');
}

/**
 * A start for a 100-port relay range outside the kernel's ephemeral range, so it never
 * overlaps the free ports picked for listeners (callbox refuses that) or other sockets.
 */
function relayRangeStart() {
  let [low, high] = [32768, 60999];
  try {
    [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  } catch {
    // Not Linux: keep the usual defaults.
  }
  const slots = (lo, hi) => Math.max(0, Math.floor((hi - lo + 1) / 100));
  const above = slots(high + 1, 65535);
  if (above > 0) return high + 1 + Math.floor(Math.random() * above) * 100;
  return 20000 + Math.floor(Math.random() * Math.min(slots(20000, low - 1), 50)) * 100;
}

/**
 * TOML for a loopback test instance on `host` (every listener and the relays), reached as
 * `publicHost` (the printed URL, the Origin /ws accepts, the TURN URLs). `extra` is appended
 * verbatim (e.g. [[rooms]]);
 * `serverExtra` goes inside [server] (e.g. extra_origins). `maxConnectionsPerAddress` raises
 * the web listener's per-address limit (server.max_connections_per_address), for a test that
 * holds thousands of WebSockets from 127.0.0.1; the relay's own limits are in [signaling]
 * (`extra`).
 */
export function testConfig({
  host = '127.0.0.1', publicHost = 'localhost', httpPort, turnPort, relayPortMin, relayPortMax, extra = '', serverExtra = '',
  maxConnectionsPerAddress,
}) {
  const perAddress = maxConnectionsPerAddress === undefined
    ? ''
    : `max_connections_per_address = ${Number(maxConnectionsPerAddress)}`;
  return `[server]
public_host = "${publicHost}"
listen = "${host}:${httpPort}"
shutdown_grace_secs = 1
${perAddress}
${serverExtra}

[turn]
enabled = true
listen_udp = ["${host}:${turnPort}"]
listen_tcp = ["${host}:${turnPort}"]
relay_ips = ["${host}"]
relay_port_min = ${relayPortMin}
relay_port_max = ${relayPortMax}

${extra}
`;
}

/**
 * Starts callbox and resolves once it printed its URL.
 * Options: host (the loopback address it listens and relays on, default 127.0.0.1) and
 * publicHost (see testConfig), httpPort (0: pick a free fixed port, so a restart can reuse it), turnPort, extra
 * TOML, serverExtra (TOML lines inside [server]), maxConnectionsPerAddress (see testConfig),
 * config (full TOML instead of the generated one), prefix (argv to run the binary under,
 * e.g. ['ip', 'netns', 'exec', 'pub']), startTimeoutMs.
 */
export async function startCallbox(options = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'callbox-test-'));
  const host = options.host ?? '127.0.0.1';
  const httpPort = options.httpPort || (await freePort({ host }));
  // TURN listens on UDP and TCP on this port, so it must not be the HTTP port: the kernel's
  // UDP and TCP ephemeral pickers are independent and do hand out the same number.
  let turnPort = options.turnPort;
  for (let tries = 0; !turnPort && tries < 20; tries += 1) {
    const port = await freePort({ udp: true, host });
    if (port !== httpPort) turnPort = port;
  }
  if (!turnPort) throw new Error('no free TURN port distinct from the HTTP port in 20 tries');
  const relayPortMin = options.relayPortMin ?? relayRangeStart();
  const relayPortMax = options.relayPortMax ?? relayPortMin + 99;
  const configPath = path.join(dir, 'config.toml');
  const config =
    options.config ??
    testConfig({
      host,
      publicHost: options.publicHost,
      httpPort,
      turnPort,
      relayPortMin,
      relayPortMax,
      extra: options.extra ?? '',
      serverExtra: options.serverExtra ?? '',
      maxConnectionsPerAddress: options.maxConnectionsPerAddress,
    });
  writeFileSync(configPath, config);
  const instance = {
    dir,
    host,
    configPath,
    httpPort,
    turnPort,
    relayPortMin,
    relayPortMax,
    url: null,
    proc: null,
    log: [],
    async start() {
      await launch(instance, options);
      return instance;
    },
    /** SIGTERM (graceful), then SIGKILL if it has not exited within `ms`. */
    async stop(ms = 5000) {
      await stopProcess(instance.proc, 'SIGTERM', ms);
      instance.proc = null;
    },
    /** SIGKILL: the crash case (no goodbye to any client). */
    async kill() {
      await stopProcess(instance.proc, 'SIGKILL', 5000);
      instance.proc = null;
    },
    async cleanup() {
      await instance.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await instance.start();
  return instance;
}

async function launch(instance, options) {
  const prefix = options.prefix ?? [];
  const argv = [...prefix, CALLBOX_BIN, '--config', instance.configPath];
  const proc = spawn(argv[0], argv.slice(1), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CALLBOX_LOG: process.env.CALLBOX_LOG ?? 'info,turn=warn,webrtc=warn' },
  });
  instance.proc = proc;
  const remember = (chunk) => {
    instance.log.push(chunk.toString());
    if (instance.log.length > 2000) instance.log.splice(0, 1000);
  };
  proc.stderr.on('data', remember);
  const timeoutMs = options.startTimeoutMs ?? 20000;
  instance.url = await new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => {
      reject(new Error(`callbox did not print its URL within ${timeoutMs} ms:\n${instance.log.join('')}`));
    }, timeoutMs);
    proc.stdout.on('data', (chunk) => {
      remember(chunk);
      buffer += chunk.toString();
      const match = /callbox is running: open (\S+)/.exec(buffer);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`callbox exited early (code ${code}, signal ${signal}):\n${instance.log.join('')}`));
    });
  });
}

async function stopProcess(proc, signal, ms) {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolve) => proc.once('exit', resolve));
  proc.kill(signal);
  const timer = new Promise((resolve) => setTimeout(() => resolve('timeout'), ms));
  if ((await Promise.race([exited, timer])) === 'timeout') {
    proc.kill('SIGKILL');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
  }
}
