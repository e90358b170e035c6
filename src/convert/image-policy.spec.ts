import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Qcow2Header, VmdkDescriptor } from './image-header';
import { checkHeader, checkInfo, type ImageFacts } from './image-policy';
import type { ImageInfo } from './qemu-img';

const URL_ = 'https://images.example/disk.img';
const GIB = 1024 ** 3;

function qcow2(overrides: Partial<Qcow2Header> = {}): Qcow2Header {
  return {
    version: 3,
    virtualSize: BigInt(10 * GIB),
    backingFileOffset: 0n,
    backingFileSize: 0,
    incompatibleFeatures: 0n,
    externalDataFile: false,
    ...overrides,
  };
}

function vmdk(overrides: Partial<VmdkDescriptor> = {}): VmdkDescriptor {
  return {
    createType: 'monolithicSparse',
    extents: [{ access: 'RW', sectors: 20971520, type: 'SPARSE', file: 'disk.vmdk' }],
    ...overrides,
  };
}

type HeaderFacts = Omit<ImageFacts, 'info'>;
const facts = (overrides: Partial<HeaderFacts>): HeaderFacts => ({
  url: URL_,
  declared: 'auto',
  detected: 'raw',
  volumeBytes: 10 * GIB,
  ...overrides,
});

describe('checkHeader: which images may be read at all, before qemu-img opens them', () => {
  const accepted: [string, Partial<HeaderFacts>][] = [
    ['raw, declared auto', {}],
    ['raw, declared raw', { declared: 'raw' }],
    ['qcow2 v3 without backing file that fits the volume exactly', { detected: 'qcow2', qcow2: qcow2() }],
    [
      'qcow2 v2 smaller than the volume',
      { detected: 'qcow2', declared: 'qcow2', qcow2: qcow2({ version: 2, virtualSize: 1n }) },
    ],
    ['a monolithicSparse vmdk with its one SPARSE extent', { detected: 'vmdk', vmdk: vmdk() }],
    [
      'a streamOptimized vmdk with its one STREAM_OPTIMIZED extent',
      {
        detected: 'vmdk',
        vmdk: vmdk({
          createType: 'streamOptimized',
          extents: [{ access: 'RW', sectors: 8, type: 'STREAM_OPTIMIZED' }],
        }),
      },
    ],
    ['vdi', { detected: 'vdi' }],
    ['vhdx', { detected: 'vhdx', declared: 'vhdx' }],
    ['vpc', { detected: 'vpc' }],
  ];
  for (const [what, overrides] of accepted) {
    it(`accepts ${what}`, () => assert.equal(checkHeader(facts(overrides)), undefined));
  }

  const refused: [string, Partial<HeaderFacts>, string, RegExp][] = [
    [
      'a qcow2 file sent as image_type raw',
      { detected: 'qcow2', declared: 'raw', qcow2: qcow2() },
      'format-mismatch',
      /is qcow2, but the request says image_type raw/,
    ],
    [
      'a raw file sent as image_type qcow2',
      { detected: 'raw', declared: 'qcow2' },
      'format-mismatch',
      /is raw, but the request says image_type qcow2/,
    ],
    [
      'qcow (version 1)',
      { detected: 'qcow' },
      'format-unsupported',
      /is qcow, a format this daemon does not accept/,
    ],
    ['qed', { detected: 'qed' }, 'format-unsupported', /is qed/],
    [
      'a qcow2 naming a backing file (offset set)',
      { detected: 'qcow2', qcow2: qcow2({ backingFileOffset: 512n, backingFileSize: 9 }) },
      'no-backing-file',
      /names a backing file/,
    ],
    [
      'a qcow2 with only the backing file size set',
      { detected: 'qcow2', qcow2: qcow2({ backingFileSize: 9 }) },
      'no-backing-file',
      /names a backing file/,
    ],
    [
      'a qcow2 with only the backing file offset set',
      { detected: 'qcow2', qcow2: qcow2({ backingFileOffset: 512n }) },
      'no-backing-file',
      /names a backing file/,
    ],
    [
      'a qcow2 with an external data file (OSSA-2024-001)',
      { detected: 'qcow2', qcow2: qcow2({ externalDataFile: true, incompatibleFeatures: 4n }) },
      'no-external-data-file',
      /external data file/,
    ],
    [
      'a qcow2 one byte larger than the volume',
      { detected: 'qcow2', qcow2: qcow2({ virtualSize: BigInt(10 * GIB + 1) }) },
      'fits-volume',
      /virtual size of 10737418241 bytes, larger than the requested volume of 10737418240 bytes/,
    ],
    [
      'a qcow2 claiming 2^64-1 bytes',
      { detected: 'qcow2', qcow2: qcow2({ virtualSize: 2n ** 64n - 1n }) },
      'fits-volume',
      /18446744073709551615 bytes/,
    ],
    [
      'a vmdk without a descriptor',
      { detected: 'vmdk' },
      'vmdk-self-contained',
      /vmdk of type unknown; only monolithicSparse and streamOptimized/,
    ],
    [
      'a vmdk descriptor without createType',
      { detected: 'vmdk', vmdk: vmdk({ createType: undefined }) },
      'vmdk-self-contained',
      /type unknown/,
    ],
    [
      'a monolithicFlat vmdk (data in another file)',
      {
        detected: 'vmdk',
        vmdk: vmdk({
          createType: 'monolithicFlat',
          extents: [{ access: 'RW', sectors: 8, type: 'FLAT', file: '/etc/shadow' }],
        }),
      },
      'vmdk-self-contained',
      /type monolithicFlat/,
    ],
    [
      'a twoGbMaxExtentSparse vmdk',
      { detected: 'vmdk', vmdk: vmdk({ createType: 'twoGbMaxExtentSparse' }) },
      'vmdk-self-contained',
      /type twoGbMaxExtentSparse/,
    ],
    [
      'a vmdk delta naming a parent',
      { detected: 'vmdk', vmdk: vmdk({ parentFileNameHint: 'base.vmdk' }) },
      'no-backing-file',
      /vmdk delta of base\.vmdk/,
    ],
    [
      'a monolithicSparse vmdk with two extents',
      {
        detected: 'vmdk',
        vmdk: vmdk({
          extents: [vmdk().extents[0], { access: 'RW', sectors: 8, type: 'SPARSE', file: 'other.vmdk' }],
        }),
      },
      'vmdk-self-contained',
      /extents other than its own file/,
    ],
    [
      'a monolithicSparse vmdk with a FLAT extent elsewhere',
      {
        detected: 'vmdk',
        vmdk: vmdk({ extents: [{ access: 'RW', sectors: 8, type: 'FLAT', file: '/dev/sda' }] }),
      },
      'vmdk-self-contained',
      /extents other than its own file/,
    ],
    [
      'a monolithicSparse vmdk with no extents',
      { detected: 'vmdk', vmdk: vmdk({ extents: [] }) },
      'vmdk-self-contained',
      /extents other than its own file/,
    ],
  ];
  for (const [what, overrides, rule, message] of refused) {
    it(`refuses ${what} (${rule})`, () => {
      const refusal = checkHeader(facts(overrides));
      assert.equal(refusal?.rule, rule);
      assert.match(refusal.message, message);
      assert.ok(refusal.message.includes(URL_), `the message names the image: ${refusal.message}`);
    });
  }

  it('checks the declared format before anything the header says', () => {
    const refusal = checkHeader(
      facts({ detected: 'qcow2', declared: 'vmdk', qcow2: qcow2({ backingFileSize: 9 }) }),
    );
    assert.equal(refusal?.rule, 'format-mismatch');
  });
});

describe('checkInfo: what qemu-img found, against the same rules and the volume', () => {
  const info = (overrides: Partial<ImageInfo>): ImageFacts => ({
    ...facts({ detected: 'qcow2' }),
    info: { format: 'qcow2', virtualSize: 10 * GIB, ...overrides },
  });

  it('accepts an image without qemu-img facts (nothing to check yet)', () =>
    assert.equal(checkInfo(facts({})), undefined));

  const accepted: [string, Partial<ImageInfo>][] = [
    ['a qcow2 exactly the size of the volume', {}],
    ['a one-byte image', { virtualSize: 1 }],
    ['a vmdk with one extent', { format: 'vmdk', vmdkExtents: ['disk.vmdk'] }],
    ['an image qemu-img marks as not corrupt', { corrupt: false }],
  ];
  for (const [what, overrides] of accepted) {
    it(`accepts ${what}`, () => assert.equal(checkInfo(info(overrides)), undefined));
  }

  const refused: [string, Partial<ImageInfo>, string, RegExp][] = [
    [
      'a backing file name',
      { backingFilename: '/var/lib/base.qcow2' },
      'no-backing-file',
      /names a backing file \(\/var\/lib\/base\.qcow2\)/,
    ],
    ['only a backing format', { backingFormat: 'raw' }, 'no-backing-file', /names a backing file \(raw\)/],
    [
      'an external data file',
      { dataFile: '/dev/sda' },
      'no-external-data-file',
      /external data file \(\/dev\/sda\)/,
    ],
    [
      'a vmdk with two extents',
      { format: 'vmdk', vmdkExtents: ['a.vmdk', 'b.vmdk'] },
      'vmdk-self-contained',
      /has 2 vmdk extents/,
    ],
    [
      'a vmdk with no extents',
      { format: 'vmdk', vmdkExtents: [] },
      'vmdk-self-contained',
      /has 0 vmdk extents/,
    ],
    ['an image qemu-img marks corrupt', { corrupt: true }, 'not-corrupt', /marked corrupt/],
    ['a virtual size of 0', { virtualSize: 0 }, 'sane-virtual-size', /virtual size of 0 bytes/],
    ['a negative virtual size', { virtualSize: -1 }, 'sane-virtual-size', /virtual size of -1 bytes/],
    ['a virtual size beyond 2^53', { virtualSize: 2 ** 60 }, 'sane-virtual-size', /claims a virtual size/],
    ['a fractional virtual size', { virtualSize: 1.5 }, 'sane-virtual-size', /1\.5 bytes/],
    ['a virtual size that is not a number', { virtualSize: Number.NaN }, 'sane-virtual-size', /NaN bytes/],
    [
      'a virtual size one byte larger than the volume',
      { virtualSize: 10 * GIB + 1 },
      'fits-volume',
      /10737418241 bytes, larger than the requested volume of 10737418240 bytes/,
    ],
  ];
  for (const [what, overrides, rule, message] of refused) {
    it(`refuses ${what} (${rule})`, () => {
      const refusal = checkInfo(info(overrides));
      assert.equal(refusal?.rule, rule);
      assert.match(refusal.message, message);
      assert.ok(refusal.message.includes(URL_), `the message names the image: ${refusal.message}`);
    });
  }
});
