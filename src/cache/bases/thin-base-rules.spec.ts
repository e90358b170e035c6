import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { volumeNameProblem } from '../../volumes/volume-name';
import {
  completeTags,
  parseThinBase,
  partialTags,
  pinnedBytes,
  poolRoomProblem,
  thinBaseName,
} from './thin-base-rules';

const OWNER = 'libvirt-volume-provisioner';
const SHA = 'ab'.repeat(32);
const RAW = 'cd'.repeat(32);

describe('thin base rules', () => {
  it('names a base lvp-base-<hex16> per image and virtual size, a name no user volume may take', () => {
    const name = thinBaseName(SHA, 1024);
    assert.match(name, /^lvp-base-[0-9a-f]{16}$/);
    assert.equal(thinBaseName(SHA, 1024), name, 'stable');
    assert.notEqual(thinBaseName(SHA, 2048), name, 'another virtual size, another base');
    assert.notEqual(thinBaseName('ef'.repeat(32), 1024), name, 'another image, another base');
    assert.match(volumeNameProblem(name) ?? '', /reserved for golden bases/);
    assert.equal(volumeNameProblem('lvp-basement'), undefined, 'only the exact prefix is reserved');
  });

  it('reads a partial base as partial and a completed one as complete; ignores what is not a base of ours', () => {
    const name = thinBaseName(SHA, 1024);
    const partial = [OWNER, ...partialTags(SHA, 1024, 1_700_000_000_000)];
    assert.deepEqual(parseThinBase({ name, tags: partial }, OWNER), {
      state: 'partial',
      name,
      why: 'it was being made',
    });
    const { add, del } = completeTags(RAW);
    const complete = [...partial.filter((t) => !del.includes(t)), ...add];
    assert.deepEqual(parseThinBase({ name, tags: complete }, OWNER), {
      state: 'complete',
      name,
      sha256: SHA,
      virtualSize: 1024,
      rawSha256: RAW,
      madeAt: 1_700_000_000_000,
    });
    // Without the owner tag, or a user-style name: not ours to touch.
    assert.equal(parseThinBase({ name, tags: complete.filter((t) => t !== OWNER) }, OWNER), undefined);
    assert.equal(parseThinBase({ name: 'vm-1', tags: complete }, OWNER), undefined);
    // Tags that do not match the name (renamed by hand), or no raw digest: never cloned from.
    assert.equal(parseThinBase({ name: thinBaseName(SHA, 2048), tags: complete }, OWNER)?.state, 'partial');
    const noRaw = complete.filter((t) => !t.startsWith('lvp-base-raw='));
    assert.equal(parseThinBase({ name, tags: noRaw }, OWNER)?.state, 'partial');
  });

  it('makes no base once pool data or metadata use reaches the threshold, and says which', () => {
    assert.equal(poolRoomProblem({ dataPercent: 79.99, metadataPercent: 10 }, 80, 'vg/pool'), undefined);
    assert.equal(poolRoomProblem({}, 80, 'vg/pool'), undefined);
    assert.match(
      poolRoomProblem({ dataPercent: 80, metadataPercent: 10 }, 80, 'vg/pool') ?? '',
      /^thin pool vg\/pool is nearly full \(data 80%; BASE_POOL_MAX_PERCENT=80\)/,
    );
    assert.match(
      poolRoomProblem({ dataPercent: 5, metadataPercent: 91.2 }, 80, 'vg/pool') ?? '',
      /\(metadata 91.2%;/,
    );
    assert.match(
      poolRoomProblem({ dataPercent: 95, metadataPercent: 95 }, 80, 'vg/pool') ?? '',
      /data 95%, metadata 95%/,
    );
  });

  it('counts the pool data a base pins from its size and mapped share', () => {
    assert.equal(pinnedBytes({ sizeBytes: 64 * 1024 ** 2, dataPercent: 12.5 }), 8 * 1024 ** 2);
    assert.equal(pinnedBytes({ sizeBytes: 1024, dataPercent: undefined }), 0);
  });
});
