// A crowd for big-room tests: thousands of logged-in users held as raw WebSockets (node's `net`,
// a few lines of RFC 6455 client framing), not browsers. Each client answers pings and reads
// and discards everything else, so the server treats it as an idle, healthy page.

import net from 'node:net';
import crypto from 'node:crypto';

/** A masked client frame (opcode 0x1 text, 0xA pong). */
function frame(opcode, payload) {
  const body = Buffer.from(payload);
  const mask = crypto.randomBytes(4);
  let header;
  if (body.length < 126) {
    header = Buffer.from([0x80 | opcode, 0x80 | body.length]);
  } else {
    header = Buffer.alloc(4);
    header[0] = 0x80 | opcode;
    header[1] = 0x80 | 126;
    header.writeUInt16BE(body.length, 2);
  }
  for (let i = 0; i < body.length; i += 1) body[i] ^= mask[i & 3];
  return Buffer.concat([header, mask, body]);
}

/** Splits complete server frames off `buf`; returns [frames, rest]. Server frames are unmasked. */
function parseFrames(buf) {
  const frames = [];
  let at = 0;
  while (buf.length - at >= 2) {
    const opcode = buf[at] & 0x0f;
    let len = buf[at + 1] & 0x7f;
    let head = 2;
    if (len === 126) {
      if (buf.length - at < 4) break;
      len = buf.readUInt16BE(at + 2);
      head = 4;
    } else if (len === 127) {
      if (buf.length - at < 10) break;
      len = Number(buf.readBigUInt64BE(at + 2));
      head = 10;
    }
    if (buf.length - at < head + len) break;
    frames.push({ opcode, payload: buf.subarray(at + head, at + head + len) });
    at += head + len;
  }
  return [frames, buf.subarray(at)];
}

/** One client: upgrade, log in as `name` (presence deltas, as the page asks), resolve when in. */
function joinOne(port, path, name, timeoutMs) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${name}: no login reply within ${timeoutMs} ms`));
    }, timeoutMs);
    let upgraded = false;
    let pending = Buffer.alloc(0);
    socket.on('connect', () => {
      const key = crypto.randomBytes(16).toString('base64');
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n`
        + `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      if (!upgraded) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!pending.subarray(0, 12).toString().startsWith('HTTP/1.1 101')) {
          clearTimeout(timer);
          socket.destroy();
          reject(new Error(`${name}: upgrade refused: ${pending.subarray(0, end).toString()}`));
          return;
        }
        upgraded = true;
        pending = pending.subarray(end + 4);
        socket.write(frame(0x1, JSON.stringify({ type: 'login', name, presence: 'delta' })));
      }
      const [frames, rest] = parseFrames(pending);
      pending = Buffer.from(rest);
      for (const { opcode, payload } of frames) {
        if (opcode === 0x9) socket.write(frame(0xa, payload));
        if (opcode !== 0x1) continue;
        const text = payload.toString();
        if (!text.includes('"type":"login"')) continue;
        clearTimeout(timer);
        if (JSON.parse(text).success) resolve(socket);
        else reject(new Error(`${name}: login refused: ${text}`));
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

/**
 * Logs in `names` on `port` (at most `parallel` connecting at once). Resolves to a handle whose
 * close() drops every socket.
 */
export async function joinCrowd(port, names, { path = '/ws', parallel = 100, timeoutMs = 30000 } = {}) {
  const sockets = [];
  const close = () => sockets.forEach((s) => s.destroy());
  try {
    for (let i = 0; i < names.length; i += parallel) {
      const batch = names.slice(i, i + parallel).map((name) => joinOne(port, path, name, timeoutMs));
      const settled = await Promise.allSettled(batch);
      for (const s of settled) if (s.status === 'fulfilled') sockets.push(s.value);
      const failed = settled.find((s) => s.status === 'rejected');
      if (failed) throw failed.reason;
    }
  } catch (error) {
    close();
    throw error;
  }
  return { size: sockets.length, close };
}
