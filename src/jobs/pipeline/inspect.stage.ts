import { ImageRejectedError } from '../../common/errors';
import type { InspectSettings } from '../../config/groups/inspect.settings';
import { detectWrapper, type Wrapper } from '../../convert/decompressor';
import { detectFormat, readImageEnds } from '../../convert/image-format';
import { parseQcow2Header, parseVmdkDescriptor, vmdkDescriptorText } from '../../convert/image-header';
import { checkHeader, checkInfo, ImageFacts, Refusal } from '../../convert/image-policy';
import type { InspectionMemo } from '../../convert/inspection-memo';
import type { CheckResult, ImageInfo, InspectLimits, QemuImg } from '../../convert/qemu-img';
import { GIB } from '../../volumes/volume-backend';
import { jobLog } from '../job-event';
import {
  asyncStage,
  need,
  type Fetched,
  type JobContext,
  type PipelineStage,
  type StageEvent,
} from './job-context';

export interface InspectDeps {
  qemuImg: QemuImg;
  /** Verdicts of qemu-img on cached images that passed: a warm job does not ask again. */
  memo: InspectionMemo;
  /** settings.inspect: the limits qemu-img info and check run under. */
  inspect: InspectSettings;
}

/**
 * inspecting: never trust an image. Our own header reading decides the format and refuses
 * backing files, external data files and vmdks that point elsewhere before qemu-img opens the
 * file; then qemu-img info (and check, for qcow2) run pinned to that format under CPU and memory
 * limits, unless they already passed on these bytes (a warm image: InspectionMemo). All of it
 * before any volume is touched.
 */
export function makeInspectStage({ qemuImg, memo, inspect }: InspectDeps): PipelineStage {
  return (ctx) =>
    asyncStage(ctx, async (emit, signal) => {
      emit({ type: 'stage', stage: 'inspecting' });
      const fetched = need(ctx.fetched);
      const volumeBytes = ctx.request.volume_size_gb * GIB;
      // A gz/xz/zst/bz2 wrapper: the digest was checked on the bytes as published; the image inside
      // is what the policy judges and qemu-img reads. (The cache's expanded copy never has one.)
      let ends = await readImageEnds(fetched.path);
      const wrapper = detectWrapper(ends.header);
      const path = wrapper ? await unpack(ctx, fetched, wrapper, volumeBytes, signal) : fetched.path;
      if (wrapper) ends = await readImageEnds(path);
      const { header, footer } = ends;
      const format = detectFormat(header, footer);
      const vmdkText = format === 'vmdk' ? vmdkDescriptorText(header) : undefined;
      const facts: ImageFacts = {
        url: ctx.request.image_url,
        declared: ctx.request.image_type,
        detected: format,
        qcow2: parseQcow2Header(header),
        vmdk: vmdkText === undefined ? undefined : parseVmdkDescriptor(vmdkText),
        volumeBytes,
      };
      refuseIf(checkHeader(facts));

      // qemu-img's findings on these very bytes, when an earlier job had them (inspection-memo.ts).
      const key = { sha256: fetched.image.sha256, path, format };
      const remembered = memo.recall(key);
      const limits = inspectLimits(inspect, signal);
      const info = remembered?.info ?? (await qemuImg.info(path, format, limits));
      refuseIf(checkInfo({ ...facts, info }));
      const check =
        format === 'qcow2' ? (remembered?.check ?? (await qemuImg.check(path, format, limits))) : undefined;
      const compressedClusters = judgeCheck(check, path, facts.url, info, emit);
      memo.remember(key, { info, check });
      ctx.inspected = { info, format, readPath: path };
      emit(
        jobLog('image inspected: safe to open', {
          format,
          virtual_size: info.virtualSize,
          allocated_size: info.actualSize ?? null,
          unpacked_from: wrapper ?? null,
          compressed_clusters: compressedClusters,
          read_expanded_copy: path === fetched.image.expandedPath,
          qemu_img_ran: !remembered,
        }),
      );
    });
}

/** The bounds qemu-img info and check run under (INSPECT_*). */
export function inspectLimits(inspect: InspectSettings, signal: AbortSignal): InspectLimits {
  return {
    signal,
    timeoutMs: inspect.timeoutSeconds * 1000,
    limits: { cpuSeconds: inspect.cpuSeconds, addressSpaceBytes: inspect.addressSpaceBytes },
  };
}

/** The unpacked form, from the cache; a refusal (too big to unpack) names the image. */
async function unpack(
  ctx: JobContext,
  fetched: Fetched,
  wrapper: Wrapper,
  maxBytes: number,
  signal: AbortSignal,
): Promise<string> {
  try {
    return await fetched.unpacked(wrapper, maxBytes, signal);
  } catch (error) {
    if (error instanceof ImageRejectedError) {
      throw new ImageRejectedError(`image ${ctx.request.image_url}: ${error.message}`, error.details);
    }
    throw error;
  }
}

/**
 * What only the whole file shows: `qemu-img check` of a qcow2 refuses corruption. Tells the cache
 * (one `compressed_image` event) when the image has compressed clusters. Returns the check that
 * passed (none for other formats) and the count of compressed clusters.
 */
export async function checkWholeImage(
  qemuImg: QemuImg,
  path: string,
  format: string,
  url: string,
  info: ImageInfo,
  limits: InspectLimits,
  emit: (event: StageEvent) => void,
): Promise<{ check?: CheckResult; compressedClusters: number }> {
  const check = format === 'qcow2' ? await qemuImg.check(path, format, limits) : undefined;
  return { check, compressedClusters: judgeCheck(check, path, url, info, emit) };
}

/** The verdict of `qemu-img check` (none for formats other than qcow2): refused, or its compressed clusters. */
function judgeCheck(
  check: CheckResult | undefined,
  path: string,
  url: string,
  info: ImageInfo,
  emit: (event: StageEvent) => void,
): number {
  if (!check) return 0;
  if (!check.ok) {
    refuseIf({
      rule: 'not-corrupt',
      message: `image ${url} is corrupt: qemu-img check found ${check.finding}`,
    });
  }
  // Reading compressed clusters is zlib-bound: the cache may keep an expanded copy for later
  // jobs. It holds the allocated clusters uncompressed (plus a little metadata).
  if (check.compressedClusters > 0) {
    const estimatedBytes = info.clusterSize ? check.allocatedClusters * info.clusterSize : info.virtualSize;
    emit({ type: 'compressed_image', readPath: path, estimatedBytes });
  }
  return check.compressedClusters;
}

/** A policy refusal as the job's error: image_rejected, naming the rule. */
export function refuseIf(refusal: Refusal | undefined): void {
  if (refusal)
    throw new ImageRejectedError(`${refusal.message} (rule: ${refusal.rule})`, { rule: refusal.rule });
}
