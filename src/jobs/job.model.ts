import type { Stage } from './pipeline/stages';

/** The job as stored and reported. Field names follow the wire contract's snake_case where they meet it. */
export const JOB_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const FINAL_STATUSES: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];

/** A prefetch only fills the cache (warming a host before a rollout). */
export interface PrefetchRequest {
  image_url: string;
  /** `sha256:<hex>`: the digest the image must have. */
  checksum?: string;
  correlation_id?: string;
}

export interface ProvisionRequest extends PrefetchRequest {
  volume_name: string;
  volume_size_gb: number;
  image_type: string;
}

export type JobRequest = ProvisionRequest | PrefetchRequest;
export type JobKind = 'provision' | 'prefetch';

export function isProvision(request: JobRequest): request is ProvisionRequest {
  return 'volume_name' in request;
}

export function kindOf(request: JobRequest): JobKind {
  return isProvision(request) ? 'provision' : 'prefetch';
}

export interface Job {
  id: string;
  seq: number;
  status: JobStatus;
  stage: Stage | null;
  stageStartedAt: string | null;
  percent: number;
  bytesProcessed: number;
  bytesTotal: number | null;
  /**
   * While `streaming`: bytes of the image's virtual size qemu-img reports done (its -p progress:
   * counted when a request is issued, up to 8 requests of 2 MiB ahead of the writes)
   * (bytesProcessed/bytesTotal are then the download's). Kept in memory only: null otherwise.
   */
  writeBytesProcessed?: number | null;
  writeBytesTotal?: number | null;
  kind: JobKind;
  request: JobRequest;
  idempotencyKey: string | null;
  requestHash: string;
  cacheHit: boolean;
  imagePath: string | null;
  imageSha256: string | null;
  /** The image's sha256 matched an expected one (request `checksum` or sidecar). */
  checksumVerified: boolean;
  volumePath: string | null;
  /** Set (before the volume is made) when this job creates its volume; rollback removes only such volumes. */
  createdVolume: boolean;
  reusedVolume: boolean;
  /** The golden base (its file) the volume was cloned from; null when the image was converted into it. */
  cloneBase: string | null;
  /** Times a crash interrupted this job and a restart resumed it. */
  resumed: number;
  /** Bytes of the download kept from before the last restart (null: nothing was resumed). */
  resumedFromBytes: number | null;
  errorCode: string | null;
  error: string | null;
  createdAt: string;
  updatedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export function isFinal(status: JobStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

/** Share of the overall percentage each stage covers; downloading and converting carry the weight. */
const STAGE_RANGES: Record<Stage, [number, number]> = {
  resolve: [0, 2],
  checking_cache: [2, 3],
  downloading: [3, 50],
  // Download and write overlap: the fraction is their mean (stream.stage.ts).
  streaming: [3, 99],
  inspecting: [50, 52],
  creating_volume: [52, 55],
  cloning: [55, 99],
  converting: [55, 99],
  finalizing: [99, 100],
};

/** Overall percentage for a stage and the fraction (0..1) of it done, rounded to 0.1. */
export function overallPercent(stage: Stage, fraction: number): number {
  const [from, to] = STAGE_RANGES[stage];
  const clamped = Math.min(1, Math.max(0, fraction));
  return Math.round((from + (to - from) * clamped) * 10) / 10;
}

/** Average bytes per second of the current stage so far, or null when it cannot be told yet. */
export function stageThroughput(job: Job, now: number): number | null {
  if (!job.stageStartedAt || job.bytesProcessed === 0) return null;
  const seconds = (now - Date.parse(job.stageStartedAt)) / 1000;
  return seconds > 0.05 ? Math.round(job.bytesProcessed / seconds) : null;
}
