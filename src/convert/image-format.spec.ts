import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { detectFormat, DetectedFormat, HEADER_BYTES, readImageEnds } from './image-format';

/** Deterministic bytes that look random (no magic number can show up by luck between runs). */
function noise(length: number): Buffer {
  const chunks: Buffer[] = [];
  for (let i = 0; chunks.length * 32 < length; i++) {
    chunks.push(createHash('sha256').update(`noise ${i}`).digest());
  }
  return Buffer.concat(chunks).subarray(0, length);
}

describe('detectFormat: the format of an image from its first bytes', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lvp-image-format-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Makes a 1 MiB image with qemu-img and returns its path. */
  function made(format: string, options: string[] = []): string {
    const path = join(dir, `${format}${options.join('').replace(/[^a-z0-9]/gi, '-')}.img`);
    execFileSync('qemu-img', ['create', '-q', '-f', format, ...options, path, '1M']);
    return path;
  }

  const first512 = (path: string) => readFileSync(path).subarray(0, 512);

  const images: [string, string, string[], DetectedFormat][] = [
    ['a qcow2 image', 'qcow2', [], 'qcow2'],
    ['a qcow2 image in the old compat=0.10 layout (version 2)', 'qcow2', ['-o', 'compat=0.10'], 'qcow2'],
    ['a qcow (version 1) image', 'qcow', [], 'qcow'],
    ['a sparse vmdk image', 'vmdk', [], 'vmdk'],
    ['a vmdk descriptor file (monolithicFlat)', 'vmdk', ['-o', 'subformat=monolithicFlat'], 'vmdk'],
    ['a vdi image', 'vdi', [], 'vdi'],
    ['a vhdx image', 'vhdx', [], 'vhdx'],
    ['a dynamic vpc (VHD) image', 'vpc', [], 'vpc'],
    ['a qed image', 'qed', [], 'qed'],
    ['a raw image made by qemu-img', 'raw', [], 'raw'],
  ];
  for (const [what, format, options, detected] of images) {
    it(`recognises ${what} as ${detected} from its first 512 bytes`, () => {
      assert.equal(detectFormat(first512(made(format, options))), detected);
    });
  }

  it('recognises a fixed-size vpc (VHD) image by its footer, and only by it', async () => {
    const path = made('vpc', ['-o', 'subformat=fixed']);
    const { header, footer } = await readImageEnds(path);
    assert.equal(detectFormat(header), 'raw');
    assert.equal(detectFormat(header, footer), 'vpc');
  });

  it('calls a raw file of zeros raw', () => {
    const zeros = Buffer.alloc(64 * 1024);
    assert.equal(detectFormat(zeros.subarray(0, 512), zeros.subarray(-512)), 'raw');
  });

  it('calls a raw file of random-looking bytes raw', () => {
    const bytes = noise(64 * 1024);
    assert.equal(detectFormat(bytes.subarray(0, 512), bytes.subarray(-512)), 'raw');
  });

  it('calls a qcow header with version 1 qcow, and with version 2 or 3 qcow2', () => {
    const header = Buffer.alloc(512);
    header.write('QFI\xfb', 0, 'latin1');
    header.writeUInt32BE(1, 4);
    assert.equal(detectFormat(header), 'qcow');
    header.writeUInt32BE(2, 4);
    assert.equal(detectFormat(header), 'qcow2');
    header.writeUInt32BE(3, 4);
    assert.equal(detectFormat(header), 'qcow2');
  });

  const short: [string, Buffer, DetectedFormat][] = [
    ['an empty file', Buffer.alloc(0), 'raw'],
    ['the qcow magic without its version field', Buffer.from('QFI\xfb', 'latin1'), 'raw'],
    ['zeros that end before the vdi signature would', Buffer.alloc(0x43), 'raw'],
    ['"conectix" alone', Buffer.from('conectix', 'latin1'), 'vpc'],
  ];
  for (const [what, header, detected] of short) {
    it(`calls ${what} ${detected}`, () => {
      assert.equal(detectFormat(header), detected);
    });
  }

  describe('readImageEnds', () => {
    it('reads the first HEADER_BYTES and the last 512 bytes of a file', async () => {
      const path = join(dir, 'noise.raw');
      const bytes = noise(HEADER_BYTES + 4096);
      writeFileSync(path, bytes);
      const { header, footer } = await readImageEnds(path);
      assert.deepEqual(header, bytes.subarray(0, HEADER_BYTES));
      assert.deepEqual(footer, bytes.subarray(-512));
    });

    it('reads all of a file shorter than the header, and its end as the footer', async () => {
      const path = join(dir, 'short.raw');
      const bytes = noise(1000);
      writeFileSync(path, bytes);
      const { header, footer } = await readImageEnds(path);
      assert.deepEqual(header, bytes);
      assert.deepEqual(footer, bytes.subarray(-512));
    });

    it('reads a footer shorter than 512 bytes from a file shorter than that', async () => {
      const path = join(dir, 'tiny.raw');
      writeFileSync(path, 'hello');
      const { header, footer } = await readImageEnds(path);
      assert.equal(header.toString(), 'hello');
      assert.equal(footer.toString(), 'hello');
    });

    it('reads an empty file as no bytes', async () => {
      const path = join(dir, 'empty.raw');
      writeFileSync(path, Buffer.alloc(0));
      const { header, footer } = await readImageEnds(path);
      assert.equal(header.length, 0);
      assert.equal(footer.length, 0);
    });
  });
});
