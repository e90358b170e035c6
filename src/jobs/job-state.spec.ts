import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { StateEvent } from './job-event';
import { JobCancelledError, JobInterruptedError } from '../common/errors';
import { applyEvent, endedJob } from './job-state';
import type { Job } from './job.model';

const CREATED = '2025-01-01T00:00:00.000Z';

function pendingJob(): Job {
  return {
    id: 'job-1',
    seq: 1,
    status: 'running',
    stage: null,
    stageStartedAt: null,
    percent: 0,
    bytesProcessed: 0,
    bytesTotal: null,
    kind: 'provision',
    request: {
      image_url: 'https://images.example/ubuntu.qcow2',
      volume_name: 'vm-1',
      volume_size_gb: 10,
      image_type: 'qcow2',
    },
    idempotencyKey: null,
    requestHash: 'hash',
    cacheHit: false,
    imagePath: null,
    imageSha256: null,
    checksumVerified: false,
    volumePath: null,
    createdVolume: false,
    reusedVolume: false,
    cloneBase: null,
    resumed: 0,
    resumedFromBytes: null,
    errorCode: null,
    error: null,
    createdAt: CREATED,
    updatedAt: CREATED,
    startedAt: CREATED,
    finishedAt: null,
  };
}

const stage = (s: Extract<StateEvent, { type: 'stage' }>['stage']): StateEvent => ({
  type: 'stage',
  stage: s,
});
const progress = (
  fraction: number | null,
  bytesProcessed = 0,
  bytesTotal: number | null = null,
): StateEvent => ({
  type: 'progress',
  fraction,
  bytesProcessed,
  bytesTotal,
});

/** Folds the events in order and returns every intermediate job. */
function fold(events: StateEvent[], start = pendingJob()): Job[] {
  const jobs: Job[] = [];
  let job = start;
  events.forEach((event, i) => {
    job = applyEvent(job, event, `2025-01-01T00:00:${String(i + 1).padStart(2, '0')}.000Z`).job;
    jobs.push(job);
  });
  return jobs;
}

describe('applyEvent: folding pipeline events into the job', () => {
  it('follows a download and a conversion with the overall percent after each event', () => {
    const events: StateEvent[] = [
      stage('resolve'),
      stage('checking_cache'),
      stage('downloading'),
      progress(0.5, 500, 1000),
      progress(1, 1000, 1000),
      stage('inspecting'),
      stage('creating_volume'),
      stage('converting'),
      progress(0.25),
      stage('finalizing'),
      progress(1),
    ];
    assert.deepEqual(
      fold(events).map((j) => j.percent),
      [0, 2, 3, 26.5, 50, 50, 52, 55, 66, 99, 100],
    );
  });

  it('never lets the percent go down, whatever order the events come in', () => {
    const events: StateEvent[] = [
      stage('downloading'),
      progress(0.8), // 40.6
      progress(0.2), // would be 12.4
      progress(null), // unknown fraction
      stage('resolve'), // a stage earlier in the list starting late
      progress(0.1), // would be 0.2
      stage('converting'), // 55
      progress(0.5), // 77
      progress(0.1), // would be 59.4
      stage('finalizing'), // 99
    ];
    const percents = fold(events).map((j) => j.percent);
    assert.deepEqual(percents, [3, 40.6, 40.6, 40.6, 40.6, 40.6, 55, 77, 77, 99]);
    for (let i = 1; i < percents.length; i++) {
      assert.ok(percents[i] >= percents[i - 1], `event ${i}: ${percents[i - 1]} -> ${percents[i]}`);
    }
  });

  it('lifts the percent to the start of a later stage that begins before the previous one reported 100 %', () => {
    const [, , job] = fold([stage('downloading'), progress(0.1), stage('converting')]);
    assert.equal(job.percent, 55);
  });

  it('keeps the percent on a progress event before any stage has started', () => {
    const { job, kind } = applyEvent(pendingJob(), progress(0.9, 9, 10), 'now');
    assert.equal(kind, 'progress');
    assert.equal(job.percent, 0);
    assert.equal(job.bytesProcessed, 9);
    assert.equal(job.bytesTotal, 10);
  });

  it('records the bytes of a progress event, even when its fraction is unknown', () => {
    const [, job] = fold([stage('downloading'), progress(null, 4096, null)]);
    assert.equal(job.bytesProcessed, 4096);
    assert.equal(job.bytesTotal, null);
    assert.equal(job.percent, 3);
  });

  it('resets the byte counters and stamps the stage start when a stage begins', () => {
    const before = { ...pendingJob(), stage: 'downloading' as const, bytesProcessed: 1000, bytesTotal: 1000 };
    const { job, kind } = applyEvent(before, stage('converting'), '2025-01-01T00:01:00.000Z');
    assert.equal(kind, 'stage');
    assert.equal(job.stage, 'converting');
    assert.equal(job.bytesProcessed, 0);
    assert.equal(job.bytesTotal, null);
    assert.equal(job.stageStartedAt, '2025-01-01T00:01:00.000Z');
    assert.equal(job.updatedAt, '2025-01-01T00:01:00.000Z');
  });

  it('merges facts into the job and leaves everything else as it was', () => {
    const first = applyEvent(
      pendingJob(),
      { type: 'fact', facts: { cacheHit: true, imagePath: '/c/a' } },
      't1',
    );
    assert.equal(first.kind, 'fact');
    const second = applyEvent(
      first.job,
      { type: 'fact', facts: { volumePath: '/v/vm-1.raw', createdVolume: true } },
      't2',
    );
    assert.deepEqual(second.job, {
      ...pendingJob(),
      cacheHit: true,
      imagePath: '/c/a',
      volumePath: '/v/vm-1.raw',
      createdVolume: true,
      updatedAt: 't2',
    });
  });

  it('lets a later fact overwrite an earlier one', () => {
    const [, job] = fold([
      { type: 'fact', facts: { imageSha256: 'aa', checksumVerified: false } },
      { type: 'fact', facts: { checksumVerified: true } },
    ]);
    assert.equal(job.imageSha256, 'aa');
    assert.equal(job.checksumVerified, true);
  });

  it('does not change the job it was given', () => {
    const before = pendingJob();
    applyEvent(before, stage('downloading'), 'later');
    applyEvent(before, { type: 'fact', facts: { cacheHit: true } }, 'later');
    assert.deepEqual(before, pendingJob());
  });
});

describe('endedJob: the state a job ends in', () => {
  const now = '2025-01-01T00:05:00.000Z';
  const cases: [string, Parameters<typeof endedJob>[1], unknown, Partial<Job>][] = [
    ['completed, at 100 %', 'completed', undefined, { percent: 100, errorCode: null, error: null }],
    [
      'cancelled by request',
      'cancelled',
      new JobCancelledError(),
      { errorCode: 'job_cancelled', error: 'cancelled by request' },
    ],
    [
      'interrupted by a restart',
      'failed',
      new JobInterruptedError(),
      { errorCode: 'interrupted', error: 'interrupted by daemon restart' },
    ],
    [
      'failed on a bug (not a domain error)',
      'failed',
      new TypeError('x is undefined'),
      { errorCode: 'internal_error', error: 'x is undefined' },
    ],
    ['failed with no reason given', 'failed', undefined, { errorCode: 'internal_error', error: 'failed' }],
  ];
  for (const [what, status, reason, expected] of cases) {
    it(`records a job ${what}`, () => {
      const ended = endedJob(pendingJob(), status, reason, now);
      assert.equal(ended.status, status);
      assert.equal(ended.finishedAt, now);
      assert.equal(ended.updatedAt, now);
      for (const [field, value] of Object.entries(expected)) {
        assert.equal(ended[field as keyof Job], value, field);
      }
    });
  }
});
