import { readFileSync, statSync } from 'node:fs';

/**
 * Reads a file the operator configured (API tokens, TLS certificate, key, client CA). A symlink
 * is followed on purpose: systemd credentials and Kubernetes secret mounts are links by design,
 * and the daemon only reads these files, never writes them. What must be there is a regular file:
 * a fifo would block start-up (or a SIGHUP reload) forever, and a directory or device is a
 * mistake better named than read. `what` names the setting in the error.
 */
export function readConfigFile(path: string, what: string): Buffer {
  const stats = statSync(path);
  if (!stats.isFile()) {
    const kind = stats.isFIFO()
      ? 'a fifo (named pipe)'
      : stats.isDirectory()
        ? 'a directory'
        : 'not a regular file';
    throw new Error(`${what} ${path} is ${kind}; it must name a regular file`);
  }
  return readFileSync(path);
}
