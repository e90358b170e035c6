#!/usr/bin/env node
// Runs a shell command inside the LVM test guest: a Debian cloud kernel under qemu-system-x86_64
// -accel tcg with real device-mapper, the repository shared read-write over virtiofs at the same
// path, and fresh sparse disks. Streams the guest's console to stdout and exits with the
// command's exit code. See test/vm/README.md.
//
//   node test/vm/run-in-guest.mjs [--disks N] [--disk-size 8G] [--timeout 900] [--mem 2048]
//                                 [--smp 2] -- <shell command...>
//
//   --guest host boots the "host" guest instead (build-host-guest.sh: Debian bookworm with
//   systemd as PID 1, libvirt, lvm2 + udev, on a qcow2 overlay of its cached root disk as /dev/vda).
//
// Exit codes: the command's own; 124 timeout; 125 the guest ended without reporting one (it
// crashed, or could not start the command); 130/143 interrupted; 2 bad usage.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..');
const VIRTIOFSD = '/usr/lib/qemu/virtiofsd';
const SPARE_DISK_BYTES = 64 * 1024 * 1024;
const READY = 'LVP-GUEST-READY';
const EXIT_MARKER = /^LVP-GUEST-EXIT=(\d+)$/;

const t0 = performance.now();
const secs = (ms) => (ms / 1000).toFixed(1);
const say = (message) => process.stderr.write(`run-in-guest: ${message}\n`);

function usage(problem) {
  if (problem) say(problem);
  process.stderr.write(
    'usage: node test/vm/run-in-guest.mjs [--disks N] [--disk-size 8G] [--timeout 900] [--mem 2048]\n' +
      '                                     [--smp 2] [--guest lvm|host] -- <shell command...>\n',
  );
  process.exit(2);
}

function parseSize(text) {
  const match = /^(\d+)([KMGT]?)i?B?$/i.exec(text);
  if (!match) usage(`bad size: ${text}`);
  const shift = { '': 0, K: 10, M: 20, G: 30, T: 40 }[match[2].toUpperCase()];
  return Number(match[1]) * 2 ** shift;
}

function parseArgs(argv) {
  const options = { disks: 2, diskSize: '8G', timeout: 900, mem: 2048, smp: 2, guest: 'lvm' };
  const split = argv.indexOf('--');
  if (split < 0) usage('missing "--" before the command');
  const flags = argv.slice(0, split);
  const command = argv
    .slice(split + 1)
    .join(' ')
    .trim();
  if (!command) usage('no command given');
  const integer = (name, value, min, max) => {
    if (!/^\d+$/.test(value ?? '') || Number(value) < min || Number(value) > max) {
      usage(`${name} needs a whole number from ${min} to ${max}`);
    }
    return Number(value);
  };
  for (let i = 0; i < flags.length; i++) {
    const [flag, inline] = flags[i].split(/=(.*)/s, 2);
    const value = () => inline ?? flags[++i];
    if (flag === '--disks') options.disks = integer(flag, value(), 0, 20);
    else if (flag === '--disk-size') options.diskSize = value() ?? usage('--disk-size needs a size');
    else if (flag === '--timeout') options.timeout = integer(flag, value(), 1, 86_400);
    else if (flag === '--mem') options.mem = integer(flag, value(), 256, 16_384);
    else if (flag === '--smp') options.smp = integer(flag, value(), 1, 16);
    else if (flag === '--guest') {
      options.guest = value();
      if (options.guest !== 'lvm' && options.guest !== 'host') usage('--guest is lvm or host');
    } else if (flag === '-h' || flag === '--help') usage();
    else usage(`unknown option ${flags[i]}`);
  }
  options.diskBytes = parseSize(options.diskSize);
  return { options, command };
}

const { options, command } = parseArgs(process.argv.slice(2));
// The repo path travels on the kernel command line, which splits on white space.
if (!/^\/[\x21-\x7e]*$/.test(repo))
  usage(`the repository path must be printable ASCII without spaces: ${repo}`);

// --- everything started or created here, for cleanup ---------------------------------------------
const children = new Set();
let tmp;
let cmdFile;
let finished = false;

function cleanupSync() {
  for (const child of children) {
    // The build gets SIGTERM so that its own trap removes its work folder.
    if (child.exitCode === null && child.signalCode === null)
      child.kill(child.gentle ? 'SIGTERM' : 'SIGKILL');
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  if (cmdFile) rmSync(cmdFile, { force: true });
}

function finish(code) {
  if (finished) return;
  finished = true;
  cleanupSync();
  process.exit(code);
}

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
]) {
  process.on(signal, () => {
    say(`${signal}: stopping the guest`);
    finish(code);
  });
}
process.on('uncaughtException', (error) => {
  say(`internal error: ${error.stack ?? error}`);
  finish(125);
});

/**
 * Spawns a tracked child. QEMU and virtiofsd run under `setpriv --pdeathsig KILL`, which takes
 * them down even if this script is SIGKILLed; the build (`gentle`) is stopped with SIGTERM.
 */
function start(file, args, spawnOptions, gentle = false) {
  const child = gentle
    ? spawn(file, args, spawnOptions)
    : spawn('setpriv', ['--pdeathsig', 'KILL', '--', file, ...args], spawnOptions);
  child.gentle = gentle;
  children.add(child);
  child.exited = new Promise((resolveExit) => {
    child.on('exit', (code, signal) => resolveExit({ code, signal }));
    child.on('error', (error) => {
      say(`cannot start ${file}: ${error.message}`);
      resolveExit({ code: 127, signal: null });
    });
  });
  return child;
}

/** Splits a stream into lines (CR stripped, UTF-8 safe) and hands each to `onLine`. */
function lines(stream, onLine) {
  const decoder = new StringDecoder('utf8');
  let buffer = '';
  stream.on('data', (chunk) => {
    buffer += decoder.write(chunk);
    let newline;
    while ((newline = buffer.indexOf('\n')) >= 0) {
      onLine(buffer.slice(0, newline).replace(/\r+$/, ''));
      buffer = buffer.slice(newline + 1);
    }
  });
  stream.on('end', () => {
    buffer += decoder.end();
    if (buffer) onLine(buffer.replace(/\r+$/, ''));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// --- 1. the guest kernel and initramfs (cached) -----------------------------------------------------
async function buildGuest() {
  const script = options.guest === 'host' ? 'build-host-guest.sh' : 'build-guest.sh';
  const build = start('bash', [join(here, script)], { stdio: ['ignore', 'pipe', 'inherit'] }, true);
  let out = '';
  build.stdout.on('data', (chunk) => (out += chunk));
  const { code } = await build.exited;
  children.delete(build);
  const dir = out.trim().split('\n').pop();
  const files =
    options.guest === 'host' ? ['vmlinuz', 'initrd.img', 'rootfs.img'] : ['vmlinuz', 'initrd.cpio'];
  if (code !== 0 || !dir || !files.every((file) => existsSync(join(dir, file)))) {
    say(`${script} failed (exit ${code})`);
    finish(125);
  }
  return dir;
}

// --- 2. disks and the command file ------------------------------------------------------------------
/** Removes what earlier runs that were SIGKILLed left behind (their pid is in the names). */
function sweepLeftovers(cmdDir) {
  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return error.code === 'EPERM';
    }
  };
  const sweep = (dir, pattern) => {
    let names;
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const match = pattern.exec(name);
      if (match && Number(match[1]) !== process.pid && !alive(Number(match[1]))) {
        rmSync(join(dir, name), { recursive: true, force: true });
      }
    }
  };
  sweep(tmpdir(), /^lvp-vm-(\d+)-/);
  sweep(cmdDir, /^cmd-(\d+)-[0-9a-f]+\.sh$/);
}

function makeDisk(path, bytes) {
  const fd = openSync(path, 'wx', 0o600);
  ftruncateSync(fd, bytes); // sparse: costs only what the guest writes
  closeSync(fd);
  return path;
}

// --- 3. virtiofsd -----------------------------------------------------------------------------------
function nofileLimit() {
  try {
    return Math.min(1_000_000, Number(readFileSync('/proc/sys/fs/nr_open', 'utf8')));
  } catch {
    return 1_000_000;
  }
}

async function startVirtiofsd(socket) {
  const daemon = start(
    VIRTIOFSD,
    [
      `--socket-path=${socket}`,
      '-o',
      `source=${repo}`,
      '-o',
      'cache=auto',
      // chroot: the default namespace sandbox needs unshare rights that containers often lack.
      '-o',
      'sandbox=chroot',
      '-o',
      'log_level=warn',
      // One fd per inode the guest has looked up: node_modules alone is >20k files. Its own
      // default raise did not happen here (it stayed at the inherited 20000: EMFILE in the guest).
      `--rlimit-nofile=${nofileLimit()}`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  // "fv_remove_watch: TODO!" and "Unexpected poll revents" are its goodbye when QEMU disconnects.
  lines(
    daemon.stderr,
    (line) => /fv_remove_watch|Unexpected poll revents|^\s*$/.test(line) || say(`virtiofsd: ${line}`),
  );
  let gone = false;
  void daemon.exited.then(() => (gone = true));
  for (let waited = 0; !existsSync(socket); waited += 20) {
    if (gone || waited > 10_000) {
      say('virtiofsd did not come up');
      finish(125);
    }
    await sleep(20);
  }
  return daemon;
}

// --- 4. the guest -----------------------------------------------------------------------------------
async function main() {
  const guest = await buildGuest();
  const tBuilt = performance.now();

  const cmdDir = join(repo, '.tmp', 'vm');
  mkdirSync(cmdDir, { recursive: true });
  sweepLeftovers(cmdDir);
  tmp = mkdtempSync(join(tmpdir(), `lvp-vm-${process.pid}-`));
  // vda: a blank spare disk (LVM guest), or the host guest's system disk: a qcow2 overlay of its
  // cached root filesystem, so that the cache stays pristine and a run costs only what it writes.
  const host = options.guest === 'host';
  const spare = host ? join(tmp, 'vda-root.qcow2') : makeDisk(join(tmp, 'vda-spare.img'), SPARE_DISK_BYTES);
  if (host) {
    const made = spawnSync(
      'qemu-img',
      ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(guest, 'rootfs.img'), spare],
      { encoding: 'utf8' },
    );
    if (made.status !== 0) {
      say(`qemu-img create (root overlay) failed: ${made.stderr}`);
      finish(125);
    }
  }
  const disks = [];
  for (let i = 0; i < options.disks; i++) {
    const name = `vd${String.fromCharCode(98 + i)}`; // vdb, vdc, ...
    disks.push({ name, path: makeDisk(join(tmp, `${name}.img`), options.diskBytes) });
  }

  cmdFile = join(cmdDir, `cmd-${process.pid}-${randomBytes(4).toString('hex')}.sh`);
  writeFileSync(cmdFile, `# written by test/vm/run-in-guest.mjs; run by the guest's /init\n${command}\n`);

  const socket = join(tmp, 'virtiofs.sock');
  const virtiofsd = await startVirtiofsd(socket);

  const append = [
    ...(host ? ['root=/dev/vda', 'rw', 'systemd.show_status=0', 'loglevel=3'] : []),
    'console=ttyS0',
    'quiet',
    'panic=-1',
    `lvp.repo=${repo}`,
    `lvp.cmd=${relative(repo, cmdFile)}`,
    `lvp.disks=${1 + disks.length}`,
  ].join(' ');
  const drive = (path, format = 'raw') => [
    '-drive',
    `file=${path},if=virtio,format=${format},cache=unsafe,discard=unmap`,
  ];
  // prettier-ignore
  const qemuArgs = [
    '-accel', 'tcg',
    '-M', 'q35,memory-backend=mem',
    '-object', `memory-backend-memfd,id=mem,size=${options.mem}M,share=on`,
    '-m', `${options.mem}`,
    '-smp', `${options.smp}`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-serial', 'stdio', '-no-reboot',
    '-kernel', join(guest, 'vmlinuz'),
    '-initrd', join(guest, host ? 'initrd.img' : 'initrd.cpio'),
    '-append', append,
    '-chardev', `socket,id=vfs0,path=${socket}`,
    '-device', 'vhost-user-fs-pci,chardev=vfs0,tag=repo',
    // The guest gets no NIC: it needs only its loopback, which works without one.
    // PCI slot order = probe order = vda (spare), then vdb, vdc... (the test disks).
    ...drive(spare, host ? 'qcow2' : 'raw'),
    ...disks.flatMap((disk) => drive(disk.path)),
  ];
  say(
    `guest ${guest}; ${options.mem} MiB, ${options.smp} vCPU; disks ` +
      (disks.map((d) => `/dev/${d.name}`).join(' ') || 'none') +
      ` (${options.diskSize} each, sparse); timeout ${options.timeout} s`,
  );

  const tSpawn = performance.now();
  const qemu = start('qemu-system-x86_64', qemuArgs, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let tReady;
  let rc;
  let timedOut = false;
  let tMarker;
  const onLine = (line) => {
    // Kernel messages (few, with "quiet") go to stderr; stdout is the command's own output.
    if (/^\[\s*\d+\.\d+\] /.test(line)) return say(`guest kernel: ${line}`);
    process.stdout.write(`${line}\n`);
    if (line === READY) tReady ??= performance.now();
    const match = EXIT_MARKER.exec(line);
    if (match) {
      rc = Number(match[1]);
      tMarker = performance.now();
      // The guest powers off right after the marker; don't wait long if it does not.
      setTimeout(() => qemu.kill('SIGKILL'), 10_000).unref();
    }
  };
  lines(qemu.stdout, onLine);
  lines(qemu.stderr, (line) => say(`qemu: ${line}`));
  const timer = setTimeout(() => {
    timedOut = true;
    say(`timeout: the guest ran longer than ${options.timeout} s; killing QEMU`);
    qemu.kill('SIGKILL');
  }, options.timeout * 1000);

  const { code, signal } = await qemu.exited;
  clearTimeout(timer);
  const tEnd = performance.now();

  // virtiofsd leaves by itself once QEMU disconnects; make sure.
  await Promise.race([virtiofsd.exited, sleep(2000)]);
  if (virtiofsd.exitCode === null && virtiofsd.signalCode === null) {
    virtiofsd.kill('SIGTERM');
    await Promise.race([virtiofsd.exited, sleep(2000)]);
  }

  const timings = [
    `build ${secs(tBuilt - t0)} s`,
    `boot to ready ${tReady ? `${secs(tReady - tSpawn)} s` : 'never'}`,
    tReady && tMarker ? `command ${secs(tMarker - tReady)} s` : undefined,
    `qemu ${secs(tEnd - tSpawn)} s`,
    `total ${secs(performance.now() - t0)} s`,
  ].filter(Boolean);
  let exitCode;
  if (timedOut) exitCode = 124;
  else if (rc === undefined) {
    say(`the guest ended without ${'LVP-GUEST-EXIT'} (qemu exit ${code ?? signal})`);
    exitCode = 125;
  } else exitCode = rc;
  say(`${timings.join(', ')}; exit ${exitCode}`);
  finish(exitCode);
}

await main();
