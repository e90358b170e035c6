import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Daemon } from './daemon';
import { S3Server } from './s3-server';
import { makeWorkdir } from './workdir';

/** Daemon + S3 server + a scratch folder, started before and stopped after one describe block. */
export function s3Bed(label: string, env: Record<string, string> = {}) {
  const work = makeWorkdir(label);
  const cacheDir = join(work.dir, 'var/cache');
  const state = {
    work,
    s3: undefined as unknown as S3Server,
    daemon: undefined as unknown as Daemon,
    cacheDir,
    /** The cache's store (`<hex>`, `<hex>.expanded`, ...) and download area. */
    store: join(cacheDir, 'sha256'),
    tmp: join(cacheDir, 'tmp'),
    volumes: join(work.dir, 'var/volumes'),
  };
  before(async () => {
    mkdirSync(join(work.dir, 's3'));
    state.s3 = await new S3Server(join(work.dir, 's3')).start();
    state.daemon = await new Daemon({ dir: work.dir, env: { ...state.s3.daemonEnv(), ...env } }).start();
  });
  after(async () => {
    await state.daemon?.stop();
    await state.s3?.stop();
    work.cleanup();
  });
  return state;
}

export type S3Bed = ReturnType<typeof s3Bed>;
