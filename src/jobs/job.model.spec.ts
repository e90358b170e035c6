import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { overallPercent } from './job.model';
import { Stage, STAGES } from './pipeline/stages';

describe('overallPercent: a stage and its fraction done, as a share of the whole job', () => {
  const cases: [Stage, number, number][] = [
    ['resolve', 0, 0],
    ['resolve', 1, 2],
    ['checking_cache', 0, 2],
    ['downloading', 0, 3],
    ['downloading', 0.5, 26.5],
    ['downloading', 1, 50],
    ['inspecting', 0, 50],
    ['creating_volume', 1, 55],
    ['converting', 0, 55],
    ['converting', 1 / 3, 69.7],
    ['converting', 1, 99],
    ['finalizing', 0, 99],
    ['finalizing', 1, 100],
  ];
  for (const [stage, fraction, percent] of cases) {
    it(`is ${percent} % at ${stage} ${Math.round(fraction * 1000) / 10} % done`, () => {
      assert.equal(overallPercent(stage, fraction), percent);
    });
  }

  it('clamps a fraction outside 0..1 to the stage range', () => {
    assert.equal(overallPercent('downloading', -0.5), 3);
    assert.equal(overallPercent('downloading', 1.7), 50);
  });

  it('rounds to one decimal', () => {
    assert.equal(overallPercent('downloading', 0.123456), 8.8);
  });

  // A job takes one of two paths through STAGES: download then convert, or streaming (the write
  // overlaps the download; downloading hands over to it part-way, see below).
  it('never goes down from one stage to the next, each starting where the previous one ended', () => {
    // cloning and converting are alternatives: after creating_volume a job runs one or the other.
    for (const other of ['cloning', 'converting']) {
      const stages = STAGES.filter((stage) => stage !== other && stage !== 'streaming');
      for (let i = 1; i < stages.length; i++) {
        assert.equal(overallPercent(stages[i], 0), overallPercent(stages[i - 1], 1), stages[i]);
      }
    }
  });

  it('streaming spans from where downloading starts to where finalizing starts, and never sets the percent back', () => {
    assert.equal(overallPercent('streaming', 0), overallPercent('downloading', 0));
    assert.equal(overallPercent('streaming', 1), overallPercent('finalizing', 0));
    // Streaming begins once a header has arrived: its percent, (download + write) / 2 of the span,
    // starts at or above what downloading reported for the same download fraction.
    for (const downloaded of [0, 0.01, 0.3, 0.9, 1]) {
      assert.ok(overallPercent('streaming', downloaded / 2) >= overallPercent('downloading', downloaded));
    }
  });
});
