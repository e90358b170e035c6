import { ImageRejectedError } from '../../common/errors';
import type { ImageStore } from '../../cache/image-store';
import { detectWrapper, Wrapper } from '../../convert/decompressor';
import { detectFormat, readImageEnds } from '../../convert/image-format';
import { parseQcow2Header, parseVmdkDescriptor, vmdkDescriptorText } from '../../convert/image-header';
import { checkHeader, checkInfo, ImageFacts, Refusal } from '../../convert/image-policy';
import type { InspectLimits, QemuImg } from '../../convert/qemu-img';
import { GIB } from '../../lvm/volume-backend';
import { jobLog } from '../job-event';
import { asyncStage, JobContext } from './job-context';

export interface InspectSettings {
  timeoutSeconds: number;
  cpuSeconds: number;
  addressSpaceBytes: number;
}

/**
 * inspecting: never trust an image. Our own header reading decides the format and refuses
 * backing files, external data files and vmdks that point elsewhere before qemu-img opens the
 * file; then qemu-img info (and check, for qcow2) run pinned to that format under CPU and memory
 * limits. All of it before any volume is touched.
 */
export function inspectStage(
  ctx: JobContext,
  qemuImg: QemuImg,
  store: ImageStore,
  settings: InspectSettings,
) {
  return asyncStage(ctx, async (emit, signal) => {
    emit({ type: 'stage', stage: 'inspecting' });
    const image = ctx.image!;
    const volumeBytes = ctx.request.volume_size_gb * GIB;
    // The cache's expanded copy of a compressed qcow2, when it has one: the same image without
    // compression, judged by the same rules below.
    // A gz/xz/zst/bz2 wrapper: the digest was checked on the bytes as published; the image inside
    // is what the policy judges and qemu-img reads.
    const wrapper = image.expandedPath ? undefined : detectWrapper((await readImageEnds(image.path)).header);
    const path =
      image.expandedPath ?? (wrapper ? await unpack(store, ctx, wrapper, volumeBytes, signal) : image.path);
    const { header, footer } = await readImageEnds(path);
    const detected = detectFormat(header, footer);
    const vmdkText = detected === 'vmdk' ? vmdkDescriptorText(header) : undefined;
    const facts: ImageFacts = {
      url: ctx.request.image_url,
      declared: ctx.request.image_type,
      detected,
      qcow2: parseQcow2Header(header),
      vmdk: vmdkText === undefined ? undefined : parseVmdkDescriptor(vmdkText),
      volumeBytes,
    };
    refuseIf(checkHeader(facts));

    const format = detected;
    const limits: InspectLimits = {
      signal,
      timeoutMs: settings.timeoutSeconds * 1000,
      limits: { cpuSeconds: settings.cpuSeconds, addressSpaceBytes: settings.addressSpaceBytes },
    };
    const info = await qemuImg.info(path, format, limits);
    refuseIf(checkInfo({ ...facts, info }));
    let compressedClusters = 0;
    if (format === 'qcow2') {
      const check = await qemuImg.check(path, format, limits);
      if (!check.ok) {
        refuseIf({
          rule: 'not-corrupt',
          message: `image ${facts.url} is corrupt: qemu-img check found ${check.finding}`,
        });
      }
      // Reading compressed clusters is zlib-bound: later jobs read an expanded copy instead. It
      // holds the allocated clusters uncompressed (plus a little metadata).
      compressedClusters = check.compressedClusters;
      if (compressedClusters > 0) {
        const estimate = info.clusterSize ? check.allocatedClusters * info.clusterSize : info.virtualSize;
        store.expandLater(image, path, estimate);
      }
    }
    ctx.info = info;
    ctx.format = format;
    ctx.readPath = path;
    emit(
      jobLog('image inspected: safe to open', {
        format,
        virtual_size: info.virtualSize,
        allocated_size: info.actualSize ?? null,
        unpacked_from: wrapper ?? null,
        compressed_clusters: compressedClusters,
        read_expanded_copy: path === image.expandedPath,
      }),
    );
  });
}

async function unpack(
  store: ImageStore,
  ctx: JobContext,
  wrapper: Wrapper,
  maxBytes: number,
  signal: AbortSignal,
) {
  try {
    return await store.unpacked(ctx.image!, wrapper, maxBytes, ctx, signal);
  } catch (error) {
    if (error instanceof ImageRejectedError) {
      throw new ImageRejectedError(`image ${ctx.request.image_url}: ${error.message}`, error.details);
    }
    throw error;
  }
}

function refuseIf(refusal: Refusal | undefined): void {
  if (refusal)
    throw new ImageRejectedError(`${refusal.message} (rule: ${refusal.rule})`, { rule: refusal.rule });
}
