import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lastValueFrom, toArray } from 'rxjs';
import type { BaseStore } from '../../cache/base-store';
import type { ExistingVolume, VolumeBackend, WritableVolume } from '../../volumes/volume-backend';
import type { JobContext } from './job-context';
import { makeVolumeStage } from './volume.stage';

const GIB = 1024 ** 3;

/** What happened, in order: the stage's facts, the state reaching the disk, the backend's calls. */
function recorder() {
  const steps: string[] = [];
  const volumes: VolumeBackend = {
    kind: 'file',
    pathFor: (name) => `/volumes/${name}.raw`,
    find: async (): Promise<ExistingVolume | undefined> => {
      steps.push('find');
      return undefined;
    },
    create: async (name, sizeBytes): Promise<WritableVolume> => {
      steps.push('create');
      return { name, path: `/volumes/${name}.raw`, sizeBytes, readsAsZeros: true, cacheMode: 'none' };
    },
    reuse: () => Promise.reject(new Error('not used')),
    openTarget: () => Promise.reject(new Error('not used')),
    clearTail: async () => undefined,
    remove: async () => undefined,
  };
  const bases = {
    support: async () => ({ enabled: false, reason: 'CLONE_FROM_BASE=off' }),
  } as unknown as BaseStore;
  return { steps, volumes, bases };
}

describe('creating_volume: the record that this job made the volume is on disk before the volume exists', () => {
  it('emits createdVolume, waits for ctx.persisted(), then creates', async () => {
    const { steps, volumes, bases } = recorder();
    let durable!: () => void;
    const ctx: JobContext = {
      id: 'job-1',
      request: { image_url: 'http://x/i.qcow2', volume_name: 'vm-1', volume_size_gb: 1, image_type: 'qcow2' },
      inspected: { info: { format: 'qcow2', virtualSize: GIB }, format: 'qcow2', readPath: '/cache/i' },
      fetched: undefined,
      createdVolume: false,
      track: () => undefined,
      persisted: () => {
        steps.push('persisting');
        // The fdatasync in the thread pool: resolved a little later, not at once.
        return new Promise<void>((resolve) => (durable = resolve)).then(() => {
          steps.push('persisted');
        });
      },
    } as JobContext;
    const events = lastValueFrom(makeVolumeStage({ volumes, bases })(ctx).pipe(toArray()));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(!steps.includes('create'), `created before the fact was on disk: ${steps.join(', ')}`);
    durable();
    const emitted = await events;
    const fact = emitted.findIndex((e) => e.type === 'fact' && 'createdVolume' in e.facts);
    assert.ok(fact >= 0, 'the createdVolume fact is emitted');
    assert.deepEqual(steps, ['find', 'persisting', 'persisted', 'create']);
    assert.equal(ctx.createdVolume, true);
    assert.equal(ctx.volume?.name, 'vm-1');
  });
});
