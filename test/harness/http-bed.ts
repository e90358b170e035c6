import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Daemon } from './daemon';
import { ImageServer } from './image-server';
import { makeWorkdir } from './workdir';

/**
 * Daemon + an HTTP image server on 127.0.0.1 + a scratch folder, started before and stopped after
 * one describe block: the HTTP twin of s3Bed(). `images` maps a served name to a function that
 * makes the file (fixtures build images once per machine); more can be copied into `www` later.
 */
export function httpBed(
  label: string,
  images: Record<string, (workDir: string) => string>,
  env: Record<string, string> = {},
) {
  const work = makeWorkdir(label);
  const state = {
    work,
    www: join(work.dir, 'www'),
    volumes: join(work.dir, 'var/volumes'),
    server: undefined as unknown as ImageServer,
    daemon: undefined as unknown as Daemon,
    /** The URL the image server serves `name` at. */
    url: (name: string) => `${state.server.url}/${name}`,
  };
  before(async () => {
    mkdirSync(state.www);
    for (const [name, make] of Object.entries(images)) copyFileSync(make(work.dir), join(state.www, name));
    state.server = await new ImageServer(state.www).start();
    state.daemon = await new Daemon({ dir: work.dir, env }).start();
  });
  after(async () => {
    await state.daemon?.stop();
    await state.server?.stop();
    work.cleanup();
  });
  return state;
}

export type HttpBed = ReturnType<typeof httpBed>;
