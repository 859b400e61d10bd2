// callbox itself, started inside the public namespace from a config template (callbox.toml.in,
// or callbox-dual.toml.in for the dual-stack stage), stopped by PID.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { natDir, startIn } from './topology.mjs';

const repoRoot = path.resolve(natDir, '..', '..');
export const callboxBin = process.env.CALLBOX_BIN || path.join(repoRoot, 'target', 'debug', 'callbox');

/**
 * Writes the test config from `template` with each @KEY@ replaced by vars[KEY]; returns its
 * path (in a fresh temp dir). A placeholder left unfilled is an error, not a broken config.
 */
export function writeConfig(template, vars) {
  let text = fs.readFileSync(path.join(natDir, template), 'utf8');
  for (const [key, value] of Object.entries(vars)) text = text.replaceAll(`@${key}@`, value);
  const left = /@[A-Z0-9_]+@/.exec(text.replace(/^#.*$/gm, ''));
  if (left) throw new Error(`${template}: ${left[0]} was not filled in`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'callbox-nat-'));
  const file = path.join(dir, 'config.toml');
  fs.writeFileSync(file, text);
  return file;
}

/**
 * Starts callbox in `netnsName` on `address` (callbox.toml.in), or from `template` with `vars`;
 * resolves when it prints its URL. Returns { url, pid, output(), stop() }.
 */
export async function startCallbox(netnsName, address, { template = 'callbox.toml.in', vars = { ADDR: address } } = {}) {
  if (!fs.existsSync(callboxBin)) throw new Error(`callbox binary ${callboxBin} is missing (cargo build)`);
  const config = writeConfig(template, vars);
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
