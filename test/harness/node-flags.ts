import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './repo';

/** The launcher the .deb installs as /usr/bin/libvirt-volume-provisioner (systemd's ExecStart). */
export const LAUNCHER = join(repoRoot(), 'packaging', 'deb', 'bin', 'libvirt-volume-provisioner');

/**
 * The node options production starts the daemon with, read from the launcher's
 * `exec /usr/bin/node <options> …/main.js` line, so that test and bench daemons run under the
 * same V8 heap settings as the packaged one (docs/performance.md, P5).
 */
export function daemonNodeFlags(launcher = LAUNCHER): string[] {
  const line = readFileSync(launcher, 'utf8')
    .split('\n')
    .find((l) => /^exec \/usr\/bin\/node\s/.test(l));
  if (!line) throw new Error(`${launcher}: no 'exec /usr/bin/node …' line`);
  const words = line.trim().split(/\s+/).slice(2);
  const main = words.findIndex((w) => w.endsWith('/main.js'));
  if (main < 0) throw new Error(`${launcher}: the exec line names no main.js`);
  const flags = words.slice(0, main);
  for (const flag of flags) {
    if (!/^--[a-z0-9-]+(=\S+)?$/.test(flag))
      throw new Error(`${launcher}: '${flag}' is not a plain node option`);
  }
  return flags;
}
