import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BookwormChroot, mustRun, nodejsRepository } from '../harness/bookworm-chroot';
import { daemonNodeFlags } from '../harness/node-flags';
import { processesMentioning } from '../harness/processes';
import { repoRoot } from '../harness/repo';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { freePort } from '../harness/ports';

// The .deb, end to end: built by scripts/package-deb.sh from this compiled tree, checked with
// lintian, installed with apt into a clean bookworm chroot (nodejs from a local repository that
// stands in for NodeSource's, everything else from deb.debian.org), run, removed and purged.
// Cached between runs: LVP_DEB_TEST_CACHE (default /var/cache/libvirt-volume-provisioner-test).
// Part of `npm test` (which builds the .deb once for this spec and the host guest: LVP_DEB);
// alone: `npm run test:deb` (cold ~5 min, warm ~3-3.7 min on 2 cores).

const NAME = 'libvirt-volume-provisioner';
const STATE = `/var/lib/${NAME}`;
const CONFIG = `/etc/${NAME}`;
const MAIN = `/usr/lib/${NAME}/dist/src/main.js`;
const CACHE = process.env.LVP_DEB_TEST_CACHE ?? '/var/cache/libvirt-volume-provisioner-test';
// The compiled tree this spec runs from (dist, or TEST_DIST): <dist>/test/package/deb.debspec.js.
const DIST = join(__dirname, '..', '..');
const isRoot = process.getuid?.() === 0;

function mode(path: string): string {
  return (statSync(path).mode & 0o7777).toString(8).padStart(4, '0');
}

/** Seconds since `start`, for the timings printed with each step. */
function since(start: number): string {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}

/**
 * The lock file's packages the daemon never runs: devDependencies and what only they pull in
 * (`dev`), and those that are also an optional peer of a runtime package (`devOptional`:
 * typescript, of @nestjs/swagger), which `npm ci --omit=dev` alone would keep.
 */
function devOnlyPackages(lockFile: string): string[] {
  const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  const dev = Object.entries(lock.packages)
    .filter(([path, meta]) => path !== '' && (meta.dev === true || meta.devOptional === true))
    .map(([path]) => path);
  // Named too, so that a lock file in which typescript lost its dev mark still fails here.
  return [...new Set([...dev, 'node_modules/typescript'])];
}

describe(
  'the .deb in a clean Debian bookworm',
  { skip: isRoot ? false : 'needs root (chroot, mounts)' },
  () => {
    const work = makeWorkdir('deb');
    const out = join(work.dir, 'out');
    let deb = '';
    let chroot: BookwormChroot | undefined;
    let daemon: ChildProcess | undefined;
    const started = Date.now();

    before(() => {
      // npm test builds one .deb for this spec and the host guest (test/run.mjs): LVP_DEB names it.
      if (process.env.LVP_DEB) {
        deb = process.env.LVP_DEB;
        console.log(`# the .deb built by test/run.mjs: ${basename(deb)}`);
        return;
      }
      const t0 = Date.now();
      mustRun('bash', [join(repoRoot(), 'scripts/package-deb.sh'), '--dist', DIST, '--out', out]);
      const debs = readdirSync(out).filter((f) => f.endsWith('.deb'));
      assert.equal(debs.length, 1, `expected one .deb in ${out}, found: ${debs.join(', ')}`);
      deb = join(out, debs[0]);
      console.log(`# built ${basename(deb)} in ${since(t0)}`);
    });

    after(async () => {
      try {
        if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
          daemon.kill('SIGKILL');
          await once(daemon, 'exit');
        }
      } finally {
        try {
          chroot?.destroy();
        } finally {
          work.cleanup();
          console.log(`# the whole .deb spec took ${since(started)}`);
        }
      }
    });

    it('is named for its version and architecture and has the declared dependencies', () => {
      const version = mustRun('dpkg-parsechangelog', [
        '-l',
        join(repoRoot(), 'packaging/deb/changelog'),
        '-S',
        'Version',
      ]);
      assert.equal(basename(deb), `${NAME}_${version.trim()}_amd64.deb`);
      const field = (name: string) => mustRun('dpkg-deb', ['-f', deb, name]).trim();
      assert.match(field('Depends'), /(^|, )nodejs \(>= 20\.19\), nodejs \(<< 21\)/);
      for (const dep of ['qemu-utils', 'lvm2', 'util-linux', 'libc6']) {
        assert.match(field('Depends'), new RegExp(`(^|, )${dep}( |,|$)`), `Depends lacks ${dep}`);
      }
      assert.match(field('Recommends'), /(^|, )libvirt-clients(,|$)/);
      // dpkg-deb --info lists the control members: "  <size> bytes, <n> lines  [*] <name>  ...".
      const info = mustRun('dpkg-deb', ['--info', deb]);
      for (const member of ['control', 'md5sums', 'conffiles', 'postinst', 'prerm', 'postrm']) {
        assert.match(info, new RegExp(`^ +\\d+ bytes, +\\d+ lines +\\*? *${member} `, 'm'), info);
      }
      const contents = mustRun('dpkg-deb', ['-c', deb]);
      for (const path of [
        `./usr/share/doc/${NAME}/copyright`,
        `./usr/share/doc/${NAME}/changelog.Debian.gz`,
        `./usr/lib/${NAME}/node_modules/better-sqlite3/build/Release/better_sqlite3.node`,
      ]) {
        assert.ok(contents.includes(path), `the package lacks ${path}`);
      }
      const specs = contents.split('\n').filter((line) => /\/dist\/src\/.*\.spec\.js/.test(line));
      assert.deepEqual(specs, [], 'spec files must not be packaged');
      console.log(
        `# ${basename(deb)}: ${statSync(deb).size} bytes, Installed-Size ${field('Installed-Size')} KiB`,
      );
    });

    it('ships only what the daemon runs: no dev-only package, no typescript', () => {
      const shipped = new Set<string>();
      for (const line of mustRun('dpkg-deb', ['-c', deb]).split('\n')) {
        // "-rw-r--r-- root/root 1234 2025-01-01 00:00 ./usr/lib/<name>/node_modules/a/node_modules/b/x.js"
        const path = /\.\/usr\/lib\/[^/]+\/(node_modules\/.*)$/.exec(line)?.[1];
        if (path) shipped.add(path);
      }
      assert.ok(shipped.has('node_modules/pino/package.json'), 'the listing holds the runtime packages');
      const dev = devOnlyPackages(join(repoRoot(), 'package-lock.json'));
      assert.ok(
        dev.includes('node_modules/typescript') && dev.includes('node_modules/eslint'),
        dev.join(' '),
      );
      const packaged = dev.filter((dir) => shipped.has(`${dir}/package.json`));
      assert.deepEqual(packaged, [], 'development-only packages must not be in the .deb');
    });

    it('passes lintian with no errors', () => {
      const t0 = Date.now();
      const result = spawnSync('lintian', [deb], { encoding: 'utf8' });
      const lines = `${result.stdout}\n${result.stderr}`.split('\n');
      const errors = lines.filter((line) => line.startsWith('E:'));
      assert.deepEqual(errors, [], lines.join('\n'));
      assert.equal(result.status, 0, lines.join('\n'));
      const warnings = lines.filter((line) => line.startsWith('W:'));
      console.log(
        `# lintian: ${errors.length} errors, ${warnings.length} warnings not overridden, ${since(t0)}`,
      );
    });

    it('installs with apt: nodejs from the local repository, the rest from Debian; nothing starts', () => {
      const t0 = Date.now();
      const repo = nodejsRepository(CACHE);
      console.log(`# nodejs repository ready (${repo.version}) after ${since(t0)}`);
      chroot = BookwormChroot.create(work.dir, CACHE);
      console.log(`# chroot unpacked and mounted after ${since(t0)}`);
      const inside = chroot;
      mkdirSync(inside.path('srv/nodejs-repo'));
      for (const file of readdirSync(repo.dir))
        copyFileSync(join(repo.dir, file), inside.path(`srv/nodejs-repo/${file}`));
      writeFileSync(
        inside.path('etc/apt/sources.list.d/nodejs-local.list'),
        'deb [trusted=yes] file:/srv/nodejs-repo ./\n',
      );
      copyFileSync(deb, inside.path(`tmp/${basename(deb)}`));
      inside.run(['apt-get', 'update', '-q']);
      // Bookworm alone cannot satisfy the package: its nodejs is 18.
      const withoutRepo = inside.try([
        'apt-get',
        'install',
        '--simulate',
        '-o',
        'Dir::Etc::SourceParts=/nonexistent',
        `/tmp/${basename(deb)}`,
      ]);
      assert.notEqual(withoutRepo.status, 0, withoutRepo.stdout);
      assert.match(
        withoutRepo.stdout,
        /Depends: nodejs \(>= 20\.19\) but 18\.[^ ]+ is to be installed/,
        withoutRepo.stdout,
      );
      const policy = inside.run(['apt-cache', 'policy', 'nodejs']);
      assert.match(policy, new RegExp(`Candidate: ${repo.version.replace(/[.+]/g, '\\$&')}`), policy);
      inside.run(['apt-get', 'install', '-y', '-q', '--no-install-recommends', `/tmp/${basename(deb)}`], {
        DEBIAN_FRONTEND: 'noninteractive',
      });
      console.log(`# apt-get install done after ${since(t0)}`);
      const installed = inside.run([
        'dpkg-query',
        '-W',
        '-f=${Package} ${Version} ${Status}\\n',
        NAME,
        'nodejs',
        'qemu-utils',
        'lvm2',
      ]);
      for (const line of installed.trim().split('\n'))
        assert.match(line, / install ok installed$/, installed);
      assert.match(installed, new RegExp(`^nodejs ${repo.version.replace(/[.+]/g, '\\$&')} `, 'm'));
      assert.deepEqual(processesMentioning(MAIN), [], 'the installation must not start the daemon');
    });

    it('puts the files, modes and directories in place and enables (only) the socket', () => {
      const inside = chroot!;
      assert.equal(mode(inside.path(STATE)), '0700');
      assert.equal(mode(inside.path(CONFIG)), '0750');
      for (const bin of [`/usr/bin/${NAME}`, '/usr/bin/lvp'])
        assert.equal(mode(inside.path(bin)), '0755', bin);
      for (const unit of [`${NAME}.service`, `${NAME}.socket`]) {
        assert.equal(mode(inside.path(`/lib/systemd/system/${unit}`)), '0644', unit);
      }
      assert.equal(mode(inside.path(`/etc/default/${NAME}`)), '0644');
      assert.match(
        inside.run(['dpkg-query', '-W', '-f=${Conffiles}', NAME]),
        new RegExp(`/etc/default/${NAME} [0-9a-f]{32}`),
      );
      assert.equal(
        readlinkSync(inside.path(`/etc/systemd/system/sockets.target.wants/${NAME}.socket`)),
        `/lib/systemd/system/${NAME}.socket`,
      );
      assert.ok(!existsSync(inside.path(`/etc/systemd/system/multi-user.target.wants/${NAME}.service`)));
      // md5sums cover what dpkg installed: dpkg --verify reports nothing when every file matches.
      assert.equal(inside.run(['dpkg', '--verify', NAME]), '');
      assert.equal(
        inside.run(['lvp', '--version']).trim(),
        JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')).version,
      );
    });

    it('runs from the launcher with the packaged settings: GET /health answers 200', async () => {
      const inside = chroot!;
      const port = await freePort();
      const log = openSync(join(work.dir, 'daemon.log'), 'w');
      try {
        daemon = spawn(
          'chroot',
          [
            inside.root,
            ...inside.envArgs({
              CONFIG_FILE: `/etc/default/${NAME}`,
              HOST: '127.0.0.1',
              PORT: String(port),
              VOLUME_BACKEND: 'file',
            }),
            `/usr/bin/${NAME}`,
          ],
          { stdio: ['ignore', log, log] },
        );
      } finally {
        closeSync(log);
      }
      const exited = once(daemon, 'exit');
      const status = await waitFor(
        'GET /health to answer',
        async () => {
          if (daemon!.exitCode !== null) {
            throw new Error(
              `the daemon exited with ${daemon!.exitCode}: ${readFileSync(join(work.dir, 'daemon.log'), 'utf8')}`,
            );
          }
          return (await fetch(`http://127.0.0.1:${port}/health`)).status;
        },
        60_000,
        200,
      );
      assert.equal(status, 200);
      // It keeps its state where the packaged settings say.
      assert.ok(existsSync(inside.path(`${STATE}/provisioner.db`)));
      // The launcher exec's node (same pid) with the options the test harness also uses.
      const argv = readFileSync(`/proc/${daemon.pid}/cmdline`, 'utf8').split('\0');
      assert.deepEqual(argv.slice(0, -1), ['/usr/bin/node', ...daemonNodeFlags(), MAIN]);
      daemon.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, readFileSync(join(work.dir, 'daemon.log'), 'utf8'));
    });

    it('installed again over itself (as an upgrade is) keeps an edited conffile, the state and the socket', () => {
      const inside = chroot!;
      const envFile = inside.path(`/etc/default/${NAME}`);
      writeFileSync(envFile, `${readFileSync(envFile, 'utf8')}MAX_CONCURRENT_JOBS=3\n`);
      // postinst runs with "configure <old version>": the upgrade path of the snippets.
      inside.run(['dpkg', '-i', `/tmp/${basename(deb)}`], { DEBIAN_FRONTEND: 'noninteractive' });
      assert.match(readFileSync(envFile, 'utf8'), /^MAX_CONCURRENT_JOBS=3$/m);
      assert.ok(existsSync(inside.path(`${STATE}/provisioner.db`)));
      assert.equal(mode(inside.path(STATE)), '0700');
      assert.ok(
        lstatSync(inside.path(`/etc/systemd/system/sockets.target.wants/${NAME}.socket`)).isSymbolicLink(),
      );
      assert.deepEqual(
        processesMentioning(MAIN),
        [],
        'an upgrade must not start a daemon that was not running',
      );
    });

    it('dpkg -r removes the program but keeps the state and the configuration', () => {
      const inside = chroot!;
      inside.run(['dpkg', '-r', NAME]);
      assert.ok(!existsSync(inside.path(`/usr/lib/${NAME}`)));
      assert.ok(!existsSync(inside.path('/usr/bin/lvp')));
      assert.ok(existsSync(inside.path(`${STATE}/provisioner.db`)));
      assert.match(readFileSync(inside.path(`/etc/default/${NAME}`), 'utf8'), /^MAX_CONCURRENT_JOBS=3$/m);
      assert.ok(existsSync(inside.path(CONFIG)));
    });

    it('dpkg --purge removes state and configuration, but keeps volume files', () => {
      const inside = chroot!;
      // With VOLUME_BACKEND=file and the default VOLUME_DIR, these are VM disks.
      mkdirSync(inside.path(`${STATE}/volumes`), { recursive: true });
      writeFileSync(inside.path(`${STATE}/volumes/vm-1.raw`), 'disk');
      inside.run(['dpkg', '--purge', NAME]);
      assert.deepEqual(readdirSync(inside.path(STATE)), ['volumes']);
      assert.equal(readFileSync(inside.path(`${STATE}/volumes/vm-1.raw`), 'utf8'), 'disk');
      assert.ok(!existsSync(inside.path(CONFIG)));
      assert.ok(!existsSync(inside.path(`/etc/default/${NAME}`)));
      assert.throws(() => lstatSync(inside.path(`/etc/systemd/system/sockets.target.wants/${NAME}.socket`)));
      assert.equal(inside.try(['dpkg-query', '-W', NAME]).status, 1, 'dpkg still knows the package');

      // Without volume files, purge removes the state directory entirely.
      inside.run(['rm', '-r', `${STATE}/volumes`]);
      inside.run(['dpkg', '-i', `/tmp/${basename(deb)}`]);
      assert.equal(mode(inside.path(STATE)), '0700');
      inside.run(['dpkg', '--purge', NAME]);
      assert.ok(!existsSync(inside.path(STATE)));
      assert.ok(!existsSync(inside.path(CONFIG)));
    });
  },
);
