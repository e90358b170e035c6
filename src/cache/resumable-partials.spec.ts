import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import { CacheLayout } from './cache-layout';
import {
  isResumableName,
  planResume,
  ResumablePartials,
  type PartialMeta,
  type ResumePlan,
} from './resumable-partials';

const URL_A = 'http://images.example/a.qcow2';
const ref = { url: URL_A, etag: '"v1"', size: 1000 };
const meta = (over: Partial<PartialMeta> = {}): PartialMeta => ({
  url: URL_A,
  etag: '"v1"',
  size: 1000,
  ...over,
});

describe('planResume: the bytes a crash left go on only for the same object version', () => {
  // [what, record beside the partial, bytes on disk, source now, resume?, reason matches]
  const cases: [string, PartialMeta | undefined, number, typeof ref, boolean, RegExp | undefined][] = [
    ['same ETag, fewer bytes than the object: resumes', meta(), 400, ref, true, undefined],
    [
      'same ETag, all bytes already there: resumes (nothing left to fetch)',
      meta(),
      1000,
      ref,
      true,
      undefined,
    ],
    ['no bytes on disk: a plain start, nothing to say', meta(), 0, ref, false, undefined],
    [
      'the ETag changed during the outage: starts over',
      meta({ etag: '"v0"' }),
      400,
      ref,
      false,
      /ETag "v0", now "v1"/,
    ],
    [
      'more bytes than the object holds: starts over',
      meta(),
      1001,
      ref,
      false,
      /1001 bytes, more than the object's 1000/,
    ],
    ['no record beside the bytes: starts over', undefined, 400, ref, false, /no record/],
    ['a record of another URL: starts over', meta({ url: 'http://x/b' }), 400, ref, false, /no record/],
    [
      'the source gives no ETag: starts over',
      meta(),
      400,
      { ...ref, etag: undefined as unknown as string },
      false,
      /no ETag/,
    ],
  ];
  for (const [what, record, bytes, now, resume, reason] of cases) {
    it(what, () => {
      const plan: ResumePlan = planResume(record, bytes, now);
      assert.equal(plan.resume, resume);
      assert.equal(plan.bytesOnDisk, bytes);
      if (reason) assert.match(plan.restartReason ?? '', reason);
      else assert.equal(plan.restartReason, undefined);
    });
  }
});

describe('isResumableName: what start-up keeps in tmp/', () => {
  const names = new Set([
    'resume-ab.part',
    'resume-ab.part.json',
    'resume-cd.part',
    'resume-ef.part.json',
    'x.part',
  ]);
  const cases: [string, boolean][] = [
    ['resume-ab.part', true],
    ['resume-ab.part.json', true],
    ['resume-cd.part', false], // no record: cannot be checked against the source
    ['resume-ef.part.json', false], // a record without bytes
    ['x.part', false], // a throw-away partial
  ];
  for (const [name, kept] of cases) {
    it(`${name}: ${kept ? 'kept' : 'removed'}`, () => assert.equal(isResumableName(name, names), kept));
  }
});

describe('a verified download a crash caught before its index row (`placed`)', () => {
  const sha256 = 'ab'.repeat(32);

  it('planResume passes on the digest it was verified with, for the re-hash to match', () => {
    assert.equal(planResume(meta({ placed: sha256 }), 1000, ref).sha256, sha256);
    assert.equal(planResume(meta(), 1000, ref).sha256, undefined);
  });

  it('restore moves the store file back to its partial path; an indexed or unrecorded one stays', async () => {
    const root = mkdtempSync(join(tmpdir(), 'lvp-placed-'));
    try {
      const layout = new CacheLayout(root);
      mkdirSync(layout.storeDir, { recursive: true });
      mkdirSync(layout.tmpDir, { recursive: true });
      const partials = new ResumablePartials(layout, true, new Logger('spec'));
      const indexedSha = 'cd'.repeat(32);
      const stray = 'ef'.repeat(32);
      for (const name of [sha256, indexedSha, stray]) writeFileSync(layout.entry(name), name);
      const a = partials.pathFor(URL_A);
      const b = partials.pathFor('http://images.example/b.qcow2');
      writeFileSync(`${a}.json`, JSON.stringify(meta({ placed: sha256 })));
      writeFileSync(
        `${b}.json`,
        JSON.stringify(meta({ url: 'http://images.example/b.qcow2', placed: indexedSha })),
      );

      assert.deepEqual(await partials.restore(new Set([indexedSha])), [sha256]);
      assert.equal(readFileSync(a, 'utf8'), sha256);
      assert.ok(!existsSync(layout.entry(sha256)));
      assert.ok(existsSync(layout.entry(indexedSha)), 'an indexed image stays in the store');
      assert.ok(existsSync(layout.entry(stray)), 'a file no record names is left to store recovery');
      assert.ok(!existsSync(b));

      const off = new ResumablePartials(layout, false, new Logger('spec'));
      writeFileSync(
        `${b}.json`,
        JSON.stringify(meta({ url: 'http://images.example/b.qcow2', placed: stray })),
      );
      assert.deepEqual(await off.restore(new Set()), [], 'RESUME_INTERRUPTED=false');
      assert.ok(existsSync(layout.entry(stray)));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
