// callbox itself, started inside the public namespace from callbox.toml.in, stopped by PID.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { natDir, startIn } from './topology.mjs';

const repoRoot = path.resolve(natDir, '..', '..');
export const callboxBin = process.env.CALLBOX_BIN || path.join(repoRoot, 'target', 'debug', 'callbox');

/** Writes the test config for `address`; returns its path (in a fresh temp dir). */
export function writeConfig(address) {
  const template = fs.readFileSync(path.join(natDir, 'callbox.toml.in'), 'utf8');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callbox-nat-'));
  const file = path.join(dir, 'config.toml');
  fs.writeFileSync(file, template.replaceAll('@ADDR@', address));
  return file;
}

/**
 * Starts callbox in `netnsName` on `address`; resolves when it prints its URL.
 * Returns { url, pid, output(), stop() }.
 */
export async function startCallbox(netnsName, address) {
  if (!fs.existsSync(callboxBin)) throw new Error(`callbox binary ${callboxBin} is missing (cargo build)`);
  const config = writeConfig(address);
  const removeConfig = () => fs.rmSync(path.dirname(config), { recursive: true, force: true });
  let proc;
  try {
    proc = await startIn(netnsName, callboxBin, ['--config', config], {
      ready: /callbox is running: open (\S+)/,
      timeoutMs: 15_000,
      env: { CALLBOX_LOG: process.env.CALLBOX_LOG || 'info,turn=warn,webrtc_util=warn' },
    });
  } catch (err) {
    removeConfig();
    throw err;
  }
  const url = /callbox is running: open (\S+)/.exec(proc.output())[1];
  return {
    url,
    pid: proc.pid,
    output: proc.output,
    stop: async () => {
      await proc.stop();
      removeConfig();
    },
  };
}
