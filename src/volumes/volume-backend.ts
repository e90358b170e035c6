import type { FileHandle } from 'node:fs/promises';
import { Observable, type Subscription } from 'rxjs';
import type { FileIdentity } from './safe-open';

/** A volume as found on the host. */
export interface ExistingVolume {
  name: string;
  /** Path qemu-img writes to: a block device or a raw file. */
  path: string;
  sizeBytes: number;
  /** Set when something holds the volume open (a running VM): it must not be written. */
  inUseBy?: string;
  /** File volumes: which file was checked, so that every later open can verify it is the same. */
  identity?: FileIdentity;
}

/** What a backend knows about writing into a volume it returned. */
export interface WritableVolume extends ExistingVolume {
  /** True when the whole volume reads as zeros (fresh sparse file, fresh thin LV). */
  readsAsZeros: boolean;
  /** qemu-img destination cache mode that is both fast and durable for this kind of target. */
  cacheMode: 'none' | 'writeback';
  /** Set on a volume made as a copy-on-write clone of this base file: it holds the image already. */
  clonedFrom?: string;
}

/**
 * The port every volume backend implements (file now; lvm and lvm-thin next).
 * Names are validated at the edge (volume-name.ts) before they reach a backend.
 */
export interface VolumeBackend {
  readonly kind: string;
  /** Where a volume of this name lives (whether or not it exists). */
  pathFor(name: string): string;
  find(name: string): Promise<ExistingVolume | undefined>;
  /** Creates a new volume; fails if one of this name appeared meanwhile. */
  create(name: string, sizeBytes: number): Promise<WritableVolume>;
  /**
   * Creates a new volume as a copy-on-write clone of a golden base (the image as raw data, at most
   * `sizeBytes` long), grown to `sizeBytes`; past the base it reads as zeros. Fails like `create`
   * if one of this name appeared meanwhile. Only backends that can share blocks have it.
   */
  cloneFrom?(name: string, sizeBytes: number, basePath: string): Promise<WritableVolume>;
  /** Prepares an existing volume for overwriting. */
  reuse(volume: ExistingVolume): Promise<WritableVolume>;
  /**
   * Opens the volume for qemu-img to write through, verified to be the volume (a regular file
   * opened without following a link; the LV's own device-mapper device). The caller closes it.
   */
  openTarget(volume: WritableVolume): Promise<FileHandle>;
  /** Makes whatever lies beyond `imageBytes` read as zeros (the previous owner's data must not survive). */
  clearTail(volume: WritableVolume, imageBytes: number): Promise<void>;
  /** Removes a volume this daemon created; a missing volume is not an error. */
  remove(name: string): Promise<void>;
}

export const VOLUME_BACKEND = Symbol('VolumeBackend');

/**
 * Runs a writer (qemu-img) on a descriptor the backend opened and verified to be the volume, and
 * closes it when the writer ends or is unsubscribed (also when that happens while it opens):
 * nothing ever reopens the volume by name.
 */
export function throughTarget<T>(
  volumes: VolumeBackend,
  volume: WritableVolume,
  write: (fd: number) => Observable<T>,
): Observable<T> {
  return new Observable<T>((subscriber) => {
    let ended = false;
    let target: FileHandle | undefined;
    let writing: Subscription | undefined;
    // The writer has its own copy of the descriptor and has flushed (or been killed) by now:
    // a failing close of ours loses nothing.
    const close = (handle: FileHandle) => void handle.close().catch(() => undefined);
    volumes.openTarget(volume).then(
      (handle) => {
        if (ended) return close(handle);
        target = handle;
        writing = write(handle.fd).subscribe(subscriber);
      },
      (error: unknown) => subscriber.error(error),
    );
    return () => {
      ended = true;
      writing?.unsubscribe();
      if (target) close(target);
    };
  });
}

/** The original service's rule: an existing volume within ±5 % of the requested size is reused. */
export function isReusableSize(existingBytes: number, requestedBytes: number): boolean {
  return Math.abs(existingBytes - requestedBytes) <= requestedBytes * 0.05;
}

export const GIB = 1024 ** 3;
