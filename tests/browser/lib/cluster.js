// A callbox cluster for a browser test: a real redis-server (Debian's, on a free loopback port,
// no persistence), callbox nodes started through server.js's startCallbox with a [cluster]
// section pointing at it, each on its own loopback address with its own TURN, and a TCP
// forwarder that stands in for DNS or an L4 balancer (a page loads through it; the test moves
// its target when a node dies). Everything is stopped by PID / handle in `close`.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { freePort, startCallbox } from './server.js';
import { launchBrowser, openPage, consoleTail, sleep } from './browser.js';

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

/** redis-server on 127.0.0.1:<free port>, no RDB/AOF files, stopped by its PID. */
export async function startRedis({ timeoutMs = 10000 } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'callbox-redis-'));
  const port = await freePort();
  const proc = spawn(
    REDIS_SERVER,
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no',
      '--protected-mode', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log = [];
  const remember = (chunk) => {
    log.push(chunk.toString());
    if (log.length > 200) log.splice(0, 100);
  };
  proc.stdout.on('data', remember);
  proc.stderr.on('data', remember);
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    log,
    proc,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((resolve) => proc.once('exit', resolve));
        proc.kill('SIGKILL');
        await Promise.race([exited, sleep(5000)]);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited early:\n${log.join('')}`);
    if (await canConnect('127.0.0.1', port)) return redis;
    if (Date.now() > deadline) {
      await redis.stop();
      throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms:\n${log.join('')}`);
    }
    await sleep(50);
  }
}

function canConnect(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

/**
 * A TCP forwarder on 127.0.0.1:<free port> to `target` ({host, port}, settable later): what
 * DNS or a balancer does for a page. A connection is spliced to the target current when it
 * arrives; when either side ends or fails, both are closed (a dead node drops its pages'
 * sockets at once, as a real balancer does once the backend's RST arrives).
 */
export async function startForwarder() {
  const sockets = new Set();
  const forwarder = { target: null, port: 0, connections: 0, refused: 0 };
  const server = net.createServer((client) => {
    const target = forwarder.target;
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => {});
    if (!target) {
      forwarder.refused += 1;
      client.destroy();
      return;
    }
    forwarder.connections += 1;
    const upstream = net.connect({ host: target.host, port: target.port });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', () => {
      forwarder.refused += 1;
      closeBoth();
    });
    client.on('error', closeBoth);
    client.once('close', closeBoth);
    upstream.once('close', closeBoth);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  forwarder.port = server.address().port;
  forwarder.origin = `http://127.0.0.1:${forwarder.port}`;
  forwarder.url = `${forwarder.origin}/`;
  forwarder.setTarget = (target) => {
    forwarder.target = target;
  };
  forwarder.close = async () => {
    for (const socket of sockets) socket.destroy();
    await Promise.race([new Promise((resolve) => server.close(resolve)), sleep(5000)]);
  };
  return forwarder;
}

/**
 * One cluster node: callbox on `host` (its listeners, TURN and relays), reached as `host`
 * itself (so its TURN URLs name this node), in cluster `redis` as `id`, accepting the pages
 * of `extraOrigins` (the shared name in front, here the forwarder).
 */
export async function startNode({ host, id, redis, extraOrigins = [], claimTtlSecs = 6 }) {
  const origins = extraOrigins.map((o) => JSON.stringify(o)).join(', ');
  const node = await startCallbox({
    host,
    publicHost: host,
    serverExtra: `extra_origins = [${origins}]`,
    // Off: every node would want the default 127.0.0.1:9464.
    extra: `[metrics]\nlisten = ""\n\n[cluster]\nredis = "${redis.url}"\nnode_id = "${id}"\nclaim_ttl_secs = ${claimTtlSecs}\n`,
  });
  node.id = id;
  node.target = () => ({ host, port: node.httpPort });
  return node;
}

/**
 * Redis, a forwarder, nodes on 127.0.0.2, 127.0.0.3, ... (the forwarder first pointing at the
 * first node) and a Chromium. `open(url)` opens a page in its own context.
 */
export async function startCluster({ nodes: count = 2, claimTtlSecs } = {}) {
  const cluster = { redis: null, forwarder: null, nodes: [], browser: null, pages: [] };
  try {
    cluster.redis = await startRedis();
    cluster.forwarder = await startForwarder();
    for (let i = 0; i < count; i += 1) {
      cluster.nodes.push(await startNode({
        host: `127.0.0.${i + 2}`,
        id: `node-${String.fromCharCode(97 + i)}`,
        redis: cluster.redis,
        extraOrigins: [cluster.forwarder.origin],
        claimTtlSecs,
      }));
    }
    cluster.forwarder.setTarget(cluster.nodes[0].target());
    cluster.browser = await launchBrowser();
  } catch (error) {
    await closeCluster(cluster);
    throw error;
  }
  cluster.open = async (url, options = {}) => {
    const page = await openPage(cluster.browser, url, options);
    cluster.pages.push(page);
    return page;
  };
  /** Page consoles, every node's log tail and Redis's, for withDiagnostics. */
  cluster.diagnostics = () => {
    const pages = cluster.pages.map((p, i) => `--- page ${i} console\n${consoleTail(p)}`);
    const nodes = cluster.nodes.map((n) =>
      `--- callbox ${n.id} (${n.host}, pid ${n.proc?.pid ?? 'not running'}) log tail\n${n.log.slice(-40).join('')}`);
    const fwd = cluster.forwarder;
    const forwarder = `--- forwarder: target ${JSON.stringify(fwd?.target)}, ${fwd?.connections} connections, ${fwd?.refused} refused`;
    return [...pages, ...nodes, forwarder, `--- redis log tail\n${cluster.redis?.log.slice(-10).join('') ?? ''}`].join('\n');
  };
  cluster.close = () => closeCluster(cluster);
  return cluster;
}

async function closeCluster(cluster) {
  if (cluster.browser) {
    await Promise.race([cluster.browser.close(), sleep(10000)]).catch(() => {});
  }
  for (const node of cluster.nodes) await node.cleanup();
  await cluster.forwarder?.close();
  await cluster.redis?.stop();
}
