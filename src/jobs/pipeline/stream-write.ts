import { stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { catchError } from 'rxjs';
import type { GrowingFile } from '../../cache/image-store';
import { ImageRejectedError, NoSpaceError } from '../../common/errors';
import type { InspectSettings } from '../../config/groups/inspect.settings';
import { detectWrapper } from '../../convert/decompressor';
import { detectFormat, HEADER_BYTES, readImageEnds } from '../../convert/image-format';
import { parseQcow2Header } from '../../convert/image-header';
import { checkHeader, checkInfo, type ImageFacts } from '../../convert/image-policy';
import type { InspectionMemo } from '../../convert/inspection-memo';
import { NbdExport } from '../../convert/nbd/nbd-export';
import { skipsZeroWrites, type QemuImg } from '../../convert/qemu-img';
import { GIB, throughTarget, type VolumeBackend } from '../../volumes/volume-backend';
import { jobLog } from '../job-event';
import { throughput } from '../job-log';
import { checkWholeImage, inspectLimits, refuseIf } from './inspect.stage';
import { abortable, afterDownload, forward, openGrowing, readHead } from './stream-io';
import { need, type JobContext, type PipelineStage, type StageEvent } from './job-context';

export interface StreamWriteDeps {
  qemuImg: QemuImg;
  volumes: VolumeBackend;
  inspect: InspectSettings;
  /** Where the verdicts that passed are kept for the image's warm jobs (as the inspect stage does). */
  memo: InspectionMemo;
  prepareVolume: PipelineStage;
}

/** Takes the download's progress once the stage is `streaming`, to report it with the write's. */
export interface StreamProgress {
  downloaded(bytes: number): void;
}

export interface StreamWriteIo {
  emit(event: StageEvent): void;
  /** Aborted when the job is cancelled or the download failed. */
  signal: AbortSignal;
  /** Resolves when the download is verified and in place (ctx.fetched is set), rejects when it failed. */
  downloadDone: Promise<void>;
  onStreaming(progress: StreamProgress): void;
}

/**
 * Writes the image into the volume while it downloads, or leaves it to today's path (returning
 * without setting ctx.streamed) and logs why. In order:
 * 1. the header has arrived: a gz/xz/zst/bz2 wrapper, or a format other than qcow2 (or raw declared
 *    raw) takes today's path; our own header checks run (backing file, external data file, format
 *    vs image_type) with the same refusals as the inspect stage;
 * 2. `qemu-img info` through the NBD export of the growing file, and the same checks of its answer
 *    (virtual size vs volume size, ...);
 * 3. the volume is prepared (created or reused, as in creating_volume);
 * 4. `qemu-img convert` reads through the export (a read of bytes not yet arrived waits; far ahead, by range GET);
 * 5. after the download: its sha256 matched (else the fetch fails and so does the job), bytes
 *    fetched ahead equal the downloaded ones (else the stage writes again from the file), the header
 *    checks again with the file's last bytes (a fixed VHD declared raw shows only there), and
 *    `qemu-img check` on the finished file. A refusal there fails the job; rollback removes the
 *    volume it created, as for any failure.
 */
export async function streamWrite(
  deps: StreamWriteDeps,
  ctx: JobContext,
  file: GrowingFile,
  io: StreamWriteIo,
): Promise<void> {
  try {
    await write(deps, ctx, file, io);
  } catch (error) {
    // A refusal is reported in stage `inspecting` on either path, whenever it was found, so an
    // operator (and an alert) sees the same stage, code and reason for the same image.
    if (error instanceof ImageRejectedError) io.emit({ type: 'stage', stage: 'inspecting' });
    throw error;
  }
}

async function write(
  deps: StreamWriteDeps,
  ctx: JobContext,
  file: GrowingFile,
  io: StreamWriteIo,
): Promise<void> {
  const { arrivals } = file;
  const size = arrivals.size;
  const downloadEnded = io.downloadDone.then(() => Date.now());
  downloadEnded.catch(() => undefined);
  try {
    await abortable(arrivals.waitFor(Math.min(HEADER_BYTES, size)), io.signal);
  } catch (error) {
    if (io.signal.aborted) return; // cancelled
    throw error; // the growing file failed: the stage decides by the download's outcome
  }
  // Held from here on: a download that ends goes into the cache by rename, and the export reads on.
  let handle: FileHandle | undefined = await openGrowing(file.path);
  if (!handle) {
    // The download ended and went into the cache before the write began (a small image on a fast
    // link, or a resumed download that was whole already): nothing to overlap.
    await abortable(io.downloadDone, io.signal);
    return io.emit(afterDownload('the download ended before the write could begin'));
  }
  if (arrivals.failed) {
    // The source sent the object again from its first byte before the write began: the file at
    // this path is the new one, shorter than what had arrived. Nothing is written yet.
    await handle.close();
    await abortable(io.downloadDone, io.signal);
    return io.emit(afterDownload('the download started over before the write could begin'));
  }
  try {
    const header = await readHead(handle, Math.min(HEADER_BYTES, size));
    const wrapper = detectWrapper(header);
    if (wrapper)
      return io.emit(afterDownload(`the image is ${wrapper}-compressed: it is unpacked once whole`));
    const detected = detectFormat(header);
    const declared = ctx.request.image_type;
    if (detected !== 'qcow2' && !(detected === 'raw' && declared === 'raw')) {
      return io.emit(
        afterDownload(
          detected === 'raw'
            ? `no format header and image_type ${declared}: the format is told from the whole file`
            : `format ${detected} is inspected once whole (its metadata may sit anywhere in the file)`,
        ),
      );
    }
    const exporting = handle;
    handle = undefined; // the export closes it
    await writeThrough(deps, ctx, file, io, { header, detected, handle: exporting, downloadEnded });
  } finally {
    await handle?.close();
  }
}

/** What write() learnt of an image that streams; `handle` (the growing file, open) is this function's to close. */
interface Streamable {
  header: Buffer;
  detected: 'qcow2' | 'raw';
  handle: FileHandle;
  /** When the download ended; rejects when it failed. */
  downloadEnded: Promise<number>;
}

async function writeThrough(
  deps: StreamWriteDeps,
  ctx: JobContext,
  file: GrowingFile,
  io: StreamWriteIo,
  { header, detected, handle, downloadEnded }: Streamable,
): Promise<void> {
  const { arrivals } = file;
  const size = arrivals.size;
  const declared = ctx.request.image_type;
  const facts: ImageFacts = {
    url: ctx.request.image_url,
    declared,
    detected,
    qcow2: parseQcow2Header(header),
    vmdk: undefined,
    volumeBytes: ctx.request.volume_size_gb * GIB,
  };
  try {
    refuseIf(checkHeader(facts));
  } catch (error) {
    await handle.close();
    throw error;
  }

  const exported = await NbdExport.open({ file: file.path, arrivals, handle, fetchRange: file.fetchRange });
  try {
    const info = await deps.qemuImg.info(exported.uri, detected, inspectLimits(deps.inspect, io.signal));
    refuseIf(checkInfo({ ...facts, info }));
    const virtualSize = info.virtualSize;
    io.emit({ type: 'stage', stage: 'streaming' });
    let downloaded = arrivals.bytes;
    let written = 0;
    const report = () =>
      io.emit({
        type: 'progress',
        bytesProcessed: downloaded,
        bytesTotal: size,
        fraction: (downloaded / size + (virtualSize > 0 ? written / virtualSize : 1)) / 2,
        write: { bytes: written, total: virtualSize },
      });
    io.onStreaming({
      downloaded: (bytes) => {
        downloaded = bytes;
        report();
      },
    });
    report();
    io.emit(
      jobLog('write path: streaming (the image is written while it downloads)', {
        write_path: 'streaming',
        format: detected,
        virtual_size: virtualSize,
        bytes_arrived: arrivals.bytes,
        checked_once_whole: detected === 'qcow2' ? 'sha256, footer, qemu-img check' : 'sha256, footer',
      }),
    );
    // What the volume stage reads; the file is the growing one until the download is in place.
    ctx.inspected = { info, format: detected, readPath: file.path };
    await forward(deps.prepareVolume(ctx), io.signal, (event) => {
      if (event.type !== 'stage') io.emit(event);
    });
    const volume = need(ctx.volume);

    const options = {
      sourceFormat: detected,
      targetCache: volume.cacheMode,
      targetIsZero: volume.readsAsZeros,
      track: (exited: Promise<unknown>) => ctx.track(exited),
    };
    const convertStarted = Date.now();
    const converting = throughTarget(deps.volumes, volume, (targetFd) =>
      deps.qemuImg.convert(exported.uri, volume.path, { ...options, targetFd }),
    ).pipe(
      catchError((error: Error) => {
        if (/No space left on device/i.test(error.message)) {
          throw new NoSpaceError(dirname(volume.path), `writing volume ${ctx.request.volume_name}`);
        }
        throw error;
      }),
    );
    try {
      await forward(converting, io.signal, (percent) => {
        written = Math.round((virtualSize * percent) / 100);
        report();
      });
    } catch (error) {
      if (io.signal.aborted || arrivals.failed) throw error;
      // qemu-img stopped on the image itself (a corrupt qcow2, or bytes fetched ahead that differ):
      // the reason to give is what `qemu-img check` of the whole file finds, as on the other path.
      await abortable(downloadEnded, io.signal);
      await exported.aheadVerified();
      const limits = inspectLimits(deps.inspect, io.signal);
      await checkWholeImage(
        deps.qemuImg,
        need(ctx.fetched).path,
        detected,
        facts.url,
        info,
        limits,
        () => {},
      );
      throw error;
    }
    const convertEnded = Date.now();
    const downloadEndedAt = await abortable(downloadEnded, io.signal);
    // The download started again from its first byte after qemu-img had read the file (the bytes
    // kept across a crash hashed wrong, so the cache fetched the whole image once more): what was
    // written came from the damaged bytes. The stream stage writes again from the finished file.
    if (arrivals.failed) throw arrivals.failed;
    await exported.aheadVerified(); // bytes fetched by range requests = the verified download's
    written = virtualSize;
    downloaded = size;
    report();

    // What only the whole, verified file shows.
    const fetched = need(ctx.fetched);
    const ends = await readImageEnds(fetched.path);
    refuseIf(
      checkHeader({
        ...facts,
        detected: detectFormat(ends.header, ends.footer),
        qcow2: parseQcow2Header(ends.header),
      }),
    );
    const limits = inspectLimits(deps.inspect, io.signal);
    const { check, compressedClusters } = await checkWholeImage(
      deps.qemuImg,
      fetched.path,
      detected,
      facts.url,
      info,
      limits,
      io.emit,
    );
    // A warm job of this image need not ask qemu-img again (inspection-memo.ts): `info` came through
    // the export from these very bytes, now verified; its actual-size is the file's allocated blocks.
    const actualSize = (await stat(fetched.path)).blocks * 512;
    const key = { sha256: fetched.image.sha256, path: fetched.path, format: detected };
    deps.memo.remember(key, { info: { ...info, actualSize }, check });
    ctx.inspected = { info, format: detected, readPath: fetched.path };
    ctx.streamed = true;
    const seconds = (convertEnded - convertStarted) / 1000;
    io.emit(
      jobLog('image written to the volume while it downloaded', {
        virtual_size: virtualSize,
        seconds,
        bytes_per_second: throughput(virtualSize, seconds),
        convert_started_at: new Date(convertStarted).toISOString(),
        convert_ended_at: new Date(convertEnded).toISOString(),
        download_ended_at: new Date(downloadEndedAt).toISOString(),
        ...exported.logFields(),
        compressed_clusters: compressedClusters,
        target_cache: volume.cacheMode,
        target_is_zero: skipsZeroWrites(options),
      }),
    );
  } finally {
    await exported.close();
  }
}
