// A tiny UDP/TCP reflector for checking the topology itself before any browser runs: it tells
// each sender the address it saw (its public mapping after the NAT), so the test can prove the
// routers really are port-randomising symmetric NATs and that TCP gets through them.
//
//   node reflector.mjs serve ADDR PORT...       reply "ip:port" of the sender on UDP and TCP;
//                                               a STUN Binding request gets a STUN answer
//   node reflector.mjs probe ADDR PORT... [--tcp]
//       send one datagram (or open one connection) per port, print one JSON line
//       {"mapped":["ip:port",...]} with what each port reported, or {"error":...}
//
// Every wait is bounded; the server exits on SIGTERM or after --ttl seconds (default 120).

import dgram from 'node:dgram';
import net from 'node:net';

const [mode, addr, ...rest] = process.argv.slice(2);
const tcp = rest.includes('--tcp');
const ttlIdx = rest.indexOf('--ttl');
const ttl = ttlIdx >= 0 ? Number(rest[ttlIdx + 1]) : 120;
const ports = rest.filter((a, i) => /^\d+$/.test(a) && rest[i - 1] !== '--ttl').map(Number);

const MAGIC = 0x2112a442;

function isStunBinding(msg) {
  return msg.length >= 20 && msg.readUInt16BE(0) === 0x0001 && msg.readUInt32BE(4) === MAGIC;
}

// RFC 8489 Binding success with one XOR-MAPPED-ADDRESS (IPv4 or IPv6): all a browser needs to
// learn its server-reflexive candidate, so the topology can be checked without callbox.
function stunBindingSuccess(req, rinfo) {
  const v6 = rinfo.family === 'IPv6' || rinfo.family === 6;
  const ip = v6 ? ipv6Bytes(rinfo.address) : Buffer.from(rinfo.address.split('.').map(Number));
  const out = Buffer.alloc(24 + 4 + ip.length);
  out.writeUInt16BE(0x0101, 0);
  out.writeUInt16BE(8 + ip.length, 2);
  req.copy(out, 4, 4, 20); // magic cookie + transaction id
  out.writeUInt16BE(0x0020, 20);
  out.writeUInt16BE(4 + ip.length, 22);
  out.writeUInt16BE(v6 ? 0x0002 : 0x0001, 24);
  out.writeUInt16BE(rinfo.port ^ (MAGIC >>> 16), 26);
  // XOR with the magic cookie, then (IPv6) the transaction id: bytes 4..20 of the header.
  for (let i = 0; i < ip.length; i++) out[28 + i] = ip[i] ^ out[4 + i];
  return out;
}

function ipv6Bytes(text) {
  const [head, tail = ''] = text.split('::');
  const groups = (s) => (s ? s.split(':') : []);
  const h = groups(head);
  const t = groups(tail);
  const all = text.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  all.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

const udpType = String(addr).includes(':') ? 'udp6' : 'udp4';

if (mode === 'serve') {
  const closers = [];
  for (const port of ports) {
    const udp = dgram.createSocket(udpType);
    udp.on('message', (msg, rinfo) => {
      const reply = isStunBinding(msg) ? stunBindingSuccess(msg, rinfo) : `${rinfo.address}:${rinfo.port}`;
      udp.send(reply, rinfo.port, rinfo.address);
    });
    udp.bind(port, addr);
    closers.push(() => udp.close());
    const server = net.createServer((sock) => {
      sock.end(`${sock.remoteAddress}:${sock.remotePort}`);
      sock.on('error', () => {});
    });
    server.listen(port, addr);
    closers.push(() => server.close());
  }
  const stop = () => { closers.forEach((c) => c()); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  setTimeout(stop, ttl * 1000).unref();
  // Ready line for the parent to wait on.
  setTimeout(() => console.log('ready'), 50);
} else if (mode === 'probe') {
  const timeout = (ms) => new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms));
  const udpProbe = (sock, port) => new Promise((resolve) => {
    sock.once('message', (msg) => resolve(msg.toString()));
    sock.send('probe', port, addr);
  });
  const tcpProbe = (port) => new Promise((resolve, reject) => {
    const sock = net.connect(port, addr);
    let text = '';
    sock.on('data', (d) => { text += d; });
    sock.on('end', () => resolve(text));
    sock.on('error', reject);
  });
  try {
    const mapped = [];
    // One local socket for every UDP destination: a cone NAT would show one public port for all
    // of them, a symmetric NAT a different port per destination.
    const sock = tcp ? null : dgram.createSocket(udpType);
    if (sock) await new Promise((r) => sock.bind(0, r));
    for (const port of ports) {
      mapped.push(await Promise.race([tcp ? tcpProbe(port) : udpProbe(sock, port), timeout(1000)]));
    }
    sock?.close();
    console.log(JSON.stringify({ mapped }));
  } catch (err) {
    console.log(JSON.stringify({ error: err.message }));
  }
  process.exit(0);
} else {
  console.error('usage: reflector.mjs serve ADDR PORT... | probe ADDR PORT... [--tcp]');
  process.exit(2);
}
