import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { httpBed } from '../harness/http-bed';
import { waitFor } from '../harness/wait';
import { smallQcow2 } from '../fixtures/images';

const GIB = 1024 ** 3;
/** The stable code of an error body (beside an HTTP-status `code` once the wire contract has one). */
const codeOf = (body: { error_code?: string }) => body.error_code;

/**
 * The file backend never follows a link: VOLUME_DIR/<name>.raw must be a regular file (or absent).
 * Each case plants something at the volume's path, with a file outside VOLUME_DIR that a followed
 * link would overwrite, and shows the 409 and that file byte-identical afterwards.
 */
describe('file volume paths that are not regular files are refused, and nothing is written', () => {
  const bed = httpBed('volume-paths', { 'small.qcow2': smallQcow2, 'held.qcow2': smallQcow2 });
  const { work, volumes } = bed;
  const outsideDir = join(work.dir, 'elsewhere');
  const outside = join(outsideDir, 'precious.img');
  const precious = Buffer.from('bytes that must survive every refused job\n');

  before(() => {
    mkdirSync(volumes, { recursive: true });
    mkdirSync(outsideDir);
    makePrecious(reference);
  });

  /** A 1 GiB sparse file: the requested size, so a followed link would have been "reused". */
  const makePrecious = (path: string) => {
    writeFileSync(path, precious);
    truncateSync(path, GIB);
  };
  const reference = join(work.dir, 'precious.reference');
  /**
   * Byte-identical, read cheaply: qemu-img compare reads only allocated ranges of these sparse
   * files, and -s (strict) also fails when one has blocks allocated (written) that the other has not.
   */
  const assertPrecious = (path: string) => {
    try {
      execFileSync('qemu-img', ['compare', '-s', '-f', 'raw', '-F', 'raw', reference, path], {
        stdio: 'pipe',
      });
    } catch (error) {
      assert.fail(`${path} was written: ${String((error as { stdout?: Buffer }).stdout ?? error)}`);
    }
  };
  const plantOutside = () => makePrecious(outside);
  const outsideUntouched = () => assertPrecious(outside);
  const provision = (name: string, image = 'small.qcow2') =>
    bed.daemon.provision({
      image_url: `${bed.server.url}/${image}`,
      volume_name: name,
      volume_size_gb: 1,
      image_type: 'qcow2',
    });

  const cases: [string, string, (path: string) => void, RegExp][] = [
    [
      'a symlink to a file outside VOLUME_DIR',
      'vm-out',
      (p) => symlinkSync(outside, p),
      /symbolic link \(to ".*precious\.img"\)/,
    ],
    [
      'a symlink to another volume inside VOLUME_DIR',
      'vm-in',
      (p) => {
        makePrecious(join(volumes, 'vm-other.raw'));
        symlinkSync('vm-other.raw', p);
      },
      /symbolic link \(to "vm-other\.raw"\)/,
    ],
    [
      'a dangling symlink',
      'vm-dangling',
      (p) => symlinkSync(join(outsideDir, 'not-yet'), p),
      /symbolic link/,
    ],
    ['a directory', 'vm-dir', (p) => mkdirSync(p), /is a directory/],
    ['a fifo', 'vm-fifo', (p) => execFileSync('mkfifo', [p]), /fifo \(named pipe\)/],
    [
      'a second hard link to a file outside VOLUME_DIR',
      'vm-hardlink',
      (p) => linkSync(outside, p),
      /2 hard links/,
    ],
  ];
  for (const [what, name, plant, problem] of cases) {
    it(`refuses a volume path that is ${what} with 409 volume_not_regular_file`, async () => {
      plantOutside();
      const path = join(volumes, `${name}.raw`);
      plant(path);
      const before = lstatSync(path);
      const response = await provision(name);
      assert.equal(response.status, 409, JSON.stringify(response.body));
      assert.equal(codeOf(response.body), 'volume_not_regular_file');
      assert.match(response.body.message, problem);
      assert.match(response.body.message, new RegExp(`volume ${name} \\(${path.replace(/[.]/g, '\\.')}\\)`));
      assert.match(response.body.message, /never follows a link/);
      outsideUntouched();
      // What was planted is left as it was, and a dangling link's target was not created.
      assert.equal(lstatSync(path).ino, before.ino);
      assert.equal(existsSync(join(outsideDir, 'not-yet')), false);
      if (name === 'vm-in') {
        assert.ok(
          readFileSync(join(volumes, 'vm-other.raw')).equals(readFileSync(outside)),
          'vm-other.raw was written',
        );
      }
    });
  }

  it('still writes a regular file that is already there (reused) and one that is not (created)', async () => {
    writeFileSync(join(volumes, 'vm-plain.raw'), 'old contents');
    truncateSync(join(volumes, 'vm-plain.raw'), GIB);
    for (const name of ['vm-plain', 'vm-new']) {
      const submitted = await provision(name);
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      const final = await bed.daemon.waitFinal(submitted.body.job_id);
      assert.equal(final.status, 'completed', final.error);
      assert.equal(final.volume_reused, name === 'vm-plain');
      assert.equal(lstatSync(join(volumes, `${name}.raw`)).isFile(), true);
    }
  });

  it('refuses a volume swapped for a symlink after submit, before the write, and writes nothing outside', async () => {
    plantOutside();
    const path = join(volumes, 'vm-swap.raw');
    writeFileSync(path, 'a regular volume at submit time');
    truncateSync(path, GIB);
    // The image's body is held back: the job sits in `downloading` until the swap is done.
    let release!: () => void;
    bed.server.holds.set('/held.qcow2', new Promise<void>((resolve) => (release = resolve)));
    try {
      const submitted = await provision('vm-swap', 'held.qcow2');
      assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
      const id = submitted.body.job_id as string;
      await waitFor('the job to be downloading the held image', async () => {
        const { body } = await bed.daemon.status(id);
        return bed.server.countOf('GET', '/held.qcow2') > 0 && body.progress?.stage === 'downloading';
      });
      rmSync(path);
      symlinkSync(outside, path);
      release();
      const final = await bed.daemon.waitFinal(id);
      assert.equal(final.status, 'failed');
      assert.equal(final.error_code, 'volume_not_regular_file');
      assert.match(final.error, /symbolic link \(to ".*precious\.img"\)/);
      assert.equal(final.volume_reused, false);
    } finally {
      release?.();
      bed.server.holds.delete('/held.qcow2');
    }
    outsideUntouched();
    // Not this job's volume: rollback leaves the link where it is.
    assert.equal(lstatSync(path).isSymbolicLink(), true);
  });
});
