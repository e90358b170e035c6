import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Settings } from '../../config/settings';
import type { BaseRecord, CloneSupport, KeepRequest } from '../base-store';
import { GoldenBaseCatalog } from './base-catalog';
import type { BaseStorage } from './base-storage';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);
const MIB = 1024 ** 2;
const SIZE = 64 * MIB;
const key = (sha256: string, virtualSize = SIZE) => `${sha256[0]}-${virtualSize}`;

type Line = Record<string, unknown>;

/**
 * A storage of our own port (no file, no LV) that records what the catalog asks of it, in order
 * ("copy a-…", "verify a-…", "remove a-…"), and the lines logged through it. `bytes`: what a
 * base counts; `roomReason`: why none fits; `copyFails`: copy throws; `fail`: verify throws;
 * `refuse`: remove fails (an open LV); `hold()`: verify waits until let go (or aborted).
 */
class RecordingStorage implements BaseStorage {
  readonly calls: string[] = [];
  readonly lines: Line[] = [];
  readonly logger = { log: (l: Line) => this.lines.push(l), warn: (l: Line) => this.lines.push(l) };
  readonly found = new Map<string, BaseRecord>();
  bytes = MIB;
  roomReason?: string;
  fail?: string;
  copyFails?: string;
  refuse = false;
  gate?: Promise<void>;
  supported: CloneSupport = { enabled: true };

  async support(): Promise<CloneSupport> {
    this.calls.push('support');
    return this.supported;
  }
  keyOf(sha256: string, virtualSize: number): string {
    return key(sha256, virtualSize);
  }
  async recover(isCached: (sha256: string) => boolean, off: boolean): Promise<Map<string, BaseRecord>> {
    this.calls.push(`recover off=${off}`);
    return new Map([...this.found].filter(([, base]) => !off && isCached(base.sha256)));
  }
  async room(key: string): Promise<{ bytes: number } | { reason: string }> {
    this.calls.push(`room ${key}`);
    return this.roomReason ? { reason: this.roomReason } : { bytes: this.bytes };
  }
  async copy(key: string, _request: KeepRequest, signal: AbortSignal): Promise<{ path: string }> {
    this.calls.push(`copy ${key}`);
    if (signal.aborted) throw new Error('aborted');
    if (this.copyFails) throw new Error(this.copyFails);
    return { path: `/bases/${key}.partial` };
  }
  async verify(key: string, request: KeepRequest, signal: AbortSignal): Promise<BaseRecord> {
    this.calls.push(`verify ${key}`);
    const aborted = new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
    await Promise.race([this.gate, aborted]);
    if (signal.aborted) throw new Error('aborted');
    if (this.fail) throw new Error(this.fail);
    return record(request.sha256, request.virtualSize, this.bytes, new Date().toISOString());
  }
  async recordUse(key: string): Promise<void> {
    this.calls.push(`recordUse ${key}`);
  }
  async vanished(key: string): Promise<void> {
    this.calls.push(`vanished ${key}`);
  }
  async remove(key: string): Promise<boolean> {
    this.calls.push(`remove ${key}`);
    return !this.refuse;
  }
  async removeWithImage(key: string): Promise<void> {
    this.calls.push(`removeWithImage ${key}`);
  }
  async emptied(): Promise<void> {
    this.calls.push('emptied');
  }

  /** The calls of one kind ("remove", "make", ...), keys only. */
  keysOf(kind: string): string[] {
    return this.calls.filter((c) => c.startsWith(`${kind} `)).map((c) => c.slice(kind.length + 1));
  }
  /** Holds `verify` (in `gate`) until the function returned is called. */
  hold(): () => void {
    let open = () => {};
    this.gate = new Promise((resolve) => (open = resolve));
    return open;
  }
}

function record(sha256: string, virtualSize: number, allocatedBytes: number, at: string): BaseRecord {
  const base = { sha256, virtualSize, path: `/bases/${key(sha256, virtualSize)}`, rawSha256: sha256 };
  return { ...base, allocatedBytes, createdAt: at, lastUsedAt: at };
}

const request = (sha256: string, virtualSize = SIZE): KeepRequest => {
  const volume = { volumePath: `/volumes/vm-${sha256[0]}`, volumeName: `vm-${sha256[0]}` };
  const logFields = { job_id: `job-${sha256[0]}` };
  return { sha256, virtualSize, ...volume, imagePath: `/cache/${sha256}`, format: 'qcow2', logFields };
};

type Limits = Partial<{ maxBytes: number; maxCount: number; cloneFromBase: 'auto' | 'off' }>;

/** A catalog on a recording storage; `found`: the bases its storage finds at start-up. */
function catalog(limits: Limits = {}, found: BaseRecord[] = []) {
  const settings = new Settings();
  Object.assign(settings.bases, limits);
  const storage = new RecordingStorage();
  for (const base of found) storage.found.set(key(base.sha256, base.virtualSize), base);
  return { bases: new GoldenBaseCatalog(settings, storage), storage };
}

const signal = () => new AbortController().signal;
const keepA = (bases: GoldenBaseCatalog) => bases.keep(request(A), signal());
const refused = (reason: string) => ({ kept: false, reason });
/** Each base's image (its first letter) and the clones being made from it, most recently used first. */
const listed = (bases: GoldenBaseCatalog) => bases.list().map((b) => `${b.sha256[0]}:${b.cloning}`);
const evicted = (storage: RecordingStorage) =>
  storage.lines.filter((l) => l.msg === 'golden base eviction').map((l) => l.base);

/** A base kept: copied, then verified. */
async function kept(bases: GoldenBaseCatalog, sha256: string, virtualSize = SIZE) {
  const outcome = await bases.keep(request(sha256, virtualSize), signal());
  assert.ok(outcome.kept, JSON.stringify(outcome));
  assert.ok(await outcome.verified, 'verified');
  // Apart in time: the order of last uses is never a tie.
  await sleep(5);
}

/** A clone begun from a base (its lease), a moment before whatever comes next. */
async function leased(bases: GoldenBaseCatalog, sha256: string) {
  const lease = bases.acquire(sha256, SIZE);
  assert.ok(lease, `a base of ${sha256[0]}`);
  await sleep(5);
  return lease;
}

describe('GoldenBaseCatalog: a base is never evicted while a clone is made from it', () => {
  it('waits at the least recently used base while it is leased, and evicts it once the clone is done', async () => {
    const { bases, storage } = catalog({ maxCount: 1 });
    await kept(bases, A);
    const lease = await leased(bases, A);
    await kept(bases, B);
    assert.deepEqual(listed(bases), ['b:0', 'a:1']);
    assert.deepEqual(storage.keysOf('remove'), [], 'nor is the newer base removed in its place');
    await lease.release();
    assert.deepEqual(listed(bases), ['b:0']);
    assert.deepEqual(storage.keysOf('remove'), [key(A)]);
    const line = storage.lines.find((l) => l.msg === 'golden base eviction');
    assert.deepEqual(Object.keys(line ?? {}).sort(), ['base', 'last_used_at', 'msg', 'size']);
    assert.equal(bases.acquire(A, SIZE), undefined, 'an evicted base is not cloned');
  });

  it('counts every clone: the base goes after the last one; a lease released twice counts once', async () => {
    const { bases, storage } = catalog({ maxCount: 1 });
    await kept(bases, A);
    const first = await leased(bases, A);
    const second = await leased(bases, A);
    await kept(bases, B);
    await first.release();
    await first.release();
    assert.deepEqual(listed(bases), ['b:0', 'a:1']);
    assert.deepEqual(storage.keysOf('remove'), []);
    await second.release();
    assert.deepEqual(storage.keysOf('remove'), [key(A)]);
  });

  it('evicts least recently used first: a base cloned lately outlives an older one no clone used', async () => {
    const { bases, storage } = catalog({ maxCount: 2 });
    await kept(bases, A);
    await kept(bases, B);
    await (await leased(bases, A)).release();
    await kept(bases, C);
    assert.deepEqual(evicted(storage), [key(B)]);
    assert.deepEqual(listed(bases), ['c:0', 'a:0']);
  });

  it('evicts beyond BASE_MAX_BYTES too, by the bytes each base occupies, as many as it takes', async () => {
    const { bases, storage } = catalog({ maxBytes: 2 * MIB, maxCount: 10 });
    await kept(bases, A);
    await kept(bases, B);
    storage.bytes = 2 * MIB;
    await kept(bases, C);
    assert.deepEqual(evicted(storage), [key(A), key(B)]);
  });

  it('forgets a base its storage could not remove, and logs no eviction for it', async () => {
    const { bases, storage } = catalog({ maxCount: 1 });
    storage.refuse = true;
    await kept(bases, A);
    await kept(bases, B);
    assert.deepEqual(storage.keysOf('remove'), [key(A)]);
    assert.deepEqual(evicted(storage), []);
    assert.deepEqual(listed(bases), ['b:0']);
  });
});

describe('GoldenBaseCatalog.keep: when no base is made', () => {
  it('keeps none with CLONE_FROM_BASE=off, without asking the storage', async () => {
    const { bases, storage } = catalog({ cloneFromBase: 'off' });
    assert.deepEqual(await keepA(bases), refused('CLONE_FROM_BASE=off'));
    assert.deepEqual(storage.calls, []);
  });

  it('passes on why the storage cannot clone here, and why it has no room', async () => {
    const { bases, storage } = catalog();
    storage.supported = { enabled: false, reason: 'no reflinks on ext4' };
    assert.deepEqual(await keepA(bases), refused('no reflinks on ext4'));
    storage.supported = { enabled: true };
    storage.roomReason = 'thin pool vg/pool is nearly full';
    assert.deepEqual(await keepA(bases), refused('thin pool vg/pool is nearly full'));
    assert.deepEqual(storage.keysOf('copy'), []);
  });

  it('keeps none that BASE_MAX_COUNT=0 or BASE_MAX_BYTES leave no room for', async () => {
    for (const [limits, bytes] of [
      [{ maxCount: 0, maxBytes: 10 * MIB }, MIB],
      [{ maxCount: 5, maxBytes: 10 * MIB }, 10 * MIB + 1],
    ] as const) {
      const { bases, storage } = catalog(limits);
      storage.bytes = bytes;
      const { maxBytes, maxCount } = limits;
      const reason = `BASE_MAX_BYTES (${maxBytes}) / BASE_MAX_COUNT (${maxCount}) leave no room for it`;
      assert.deepEqual(await keepA(bases), refused(reason));
      assert.deepEqual(storage.keysOf('copy'), []);
    }
  });

  it('makes one base per image and size: not again, not twice at once; none is cloned before it is verified', async () => {
    const { bases, storage } = catalog();
    const open = storage.hold();
    const first = await bases.keep(request(A), signal());
    assert.ok(first.kept, 'copied: the job goes on');
    assert.equal(first.path, `/bases/${key(A)}.partial`);
    assert.deepEqual(storage.keysOf('verify'), [key(A)], 'verifying after the job');
    assert.equal(bases.acquire(A, SIZE), undefined, 'no clone from a base not yet verified');
    assert.deepEqual(bases.list(), []);
    assert.deepEqual(await keepA(bases), refused('another job is making the base of this image'));
    open();
    const base = await first.verified;
    assert.equal(base?.sha256, A);
    assert.ok(bases.acquire(A, SIZE), 'verified: cloned');
    assert.deepEqual(await keepA(bases), refused('a base of this image exists already'));
    await kept(bases, A, 2 * SIZE);
    assert.deepEqual(storage.keysOf('copy'), [key(A), key(A, 2 * SIZE)]);
  });

  it("logs how the verification ended with the job's fields; a failed one lets a later job try again", async () => {
    const { bases, storage } = catalog();
    storage.fail = 'the copy does not read as the image';
    const outcome = await keepA(bases);
    assert.ok(outcome.kept);
    assert.equal(await outcome.verified, undefined);
    const failed = storage.lines.find((l) => l.msg === 'no golden base kept');
    assert.deepEqual(failed, {
      job_id: 'job-a',
      reason: 'the copy does not read as the image',
      msg: 'no golden base kept',
    });
    assert.equal(bases.acquire(A, SIZE), undefined);
    storage.fail = undefined;
    await kept(bases, A);
    const ok = storage.lines.find((l) => l.msg === 'golden base kept');
    assert.equal(ok?.job_id, 'job-a');
    assert.equal(ok?.raw_sha256, A);
    assert.equal(typeof ok?.seconds, 'number');
    assert.deepEqual(listed(bases), ['a:0']);
  });

  it("says why the copy failed, in the job; a cancelled job's error is thrown; a later job tries again", async () => {
    const { bases, storage } = catalog();
    storage.copyFails = 'reflink: EXDEV';
    assert.deepEqual(await keepA(bases), refused('reflink: EXDEV'));
    storage.copyFails = undefined;
    const cancelled = new AbortController();
    cancelled.abort();
    await assert.rejects(bases.keep(request(A), cancelled.signal), /aborted/);
    assert.deepEqual(storage.keysOf('verify'), []);
    await kept(bases, A);
    assert.deepEqual(listed(bases), ['a:0']);
  });

  it('close stops the verifications still running and keeps no base after', async () => {
    const { bases, storage } = catalog();
    storage.hold();
    const outcome = await keepA(bases);
    assert.ok(outcome.kept);
    await bases.close();
    assert.equal(await outcome.verified, undefined, 'close waited for it');
    assert.equal(
      storage.lines.find((l) => l.msg === 'no golden base kept')?.reason,
      'the daemon is stopping',
    );
    assert.deepEqual(await bases.keep(request(B), signal()), refused('the daemon is stopping'));
    assert.deepEqual(bases.list(), []);
  });
});

describe('GoldenBaseCatalog: release, removal with the image, start-up', () => {
  it('records the last use on release; forgets a base a clone found gone, and tells the storage when none is left', async () => {
    const { bases, storage } = catalog();
    await kept(bases, A);
    await bases.acquire(A, SIZE)?.release();
    assert.deepEqual(storage.keysOf('recordUse'), [key(A)]);
    await bases.acquire(A, SIZE)?.release({ vanished: true });
    assert.deepEqual(storage.keysOf('vanished'), [key(A)]);
    assert.deepEqual(storage.keysOf('recordUse'), [key(A)], 'no use recorded for a vanished base');
    assert.equal(bases.acquire(A, SIZE), undefined);
    assert.equal(storage.calls.at(-1), 'emptied');
  });

  it("removes every base of an image, at each size, and leaves other images' bases", async () => {
    const { bases, storage } = catalog();
    await kept(bases, A);
    await kept(bases, A, 2 * SIZE);
    await kept(bases, B);
    await bases.removeImage(A);
    assert.deepEqual(storage.keysOf('removeWithImage'), [key(A), key(A, 2 * SIZE)]);
    assert.deepEqual(listed(bases), ['b:0']);
    assert.ok(!storage.calls.includes('emptied'), 'a base is left');
    await bases.removeImage(B);
    assert.deepEqual(storage.calls.slice(-2), [`removeWithImage ${key(B)}`, 'emptied']);
  });

  it('does not tell the storage it is empty while a base is being made', async () => {
    const { bases, storage } = catalog();
    await kept(bases, A);
    const open = storage.hold();
    const making = await bases.keep(request(B), signal());
    assert.ok(making.kept);
    await bases.removeImage(A);
    assert.ok(!storage.calls.includes('emptied'), 'B is being made beside it');
    open();
    assert.ok(await making.verified);
  });

  it('takes up the complete bases the storage finds, evicting beyond the limits; none with CLONE_FROM_BASE=off', async () => {
    const found = [record(A, SIZE, MIB, '2026-01-01'), record(B, SIZE, MIB, '2026-01-03')];
    found.push(record(C, SIZE, MIB, '2026-01-02')); // its image is no longer cached
    const cached = (sha256: string) => sha256 !== C;
    const { bases, storage } = catalog({ maxCount: 1 }, found);
    await bases.recover(cached);
    assert.deepEqual(storage.calls[0], 'recover off=false');
    assert.deepEqual(evicted(storage), [key(A)]);
    assert.deepEqual(listed(bases), ['b:0']);
    const off = catalog({ cloneFromBase: 'off' }, found);
    await off.bases.recover(cached);
    assert.deepEqual(off.storage.calls, ['recover off=true']);
    assert.deepEqual(off.bases.list(), []);
  });
});
