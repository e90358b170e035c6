import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isResumableName, planResume, type PartialMeta, type ResumePlan } from './resumable-partials';

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
