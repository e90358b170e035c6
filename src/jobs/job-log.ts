import { urlForLog } from '../storage/image-url';
import { isProvision, type Job, type JobRequest } from './job.model';

/** The fields every log line about a job carries, so `jq 'select(.job_id == ...)'` finds its story. */
export interface JobLogFields {
  job_id: string;
  correlation_id: string | null;
  volume_name: string | null;
}

export function jobLogFields(job: { id: string; request: JobRequest }): JobLogFields {
  return {
    job_id: job.id,
    correlation_id: job.request.correlation_id ?? null,
    volume_name: isProvision(job.request) ? job.request.volume_name : null,
  };
}

/** The request as logged when a job is accepted: the image URL without credentials or query. */
export function requestForLog(request: JobRequest): Record<string, unknown> {
  return {
    kind: isProvision(request) ? 'provision' : 'prefetch',
    image_url: urlForLog(request.image_url),
    ...(isProvision(request)
      ? { volume_size_gb: request.volume_size_gb, image_type: request.image_type }
      : {}),
    checksum_given: request.checksum !== undefined,
  };
}

/** Bytes per second over a duration, rounded; null when the duration is too short to tell. */
export function throughput(bytes: number, seconds: number): number | null {
  return seconds > 0.001 ? Math.round(bytes / seconds) : null;
}

/** Text (an error message) with the query string of any http(s) URL in it cut off, for a log line. */
export function withoutUrlQueries(text: string): string {
  // The query ends at whitespace, a quote or the end; punctuation closing a sentence stays.
  return text.replace(/\b(https?:\/\/[^\s?#'"]+)\?[^\s'"]*?(?=[.,;:)]*(?:[\s'"]|$))/g, '$1?…');
}

/**
 * The line that ends a job's story. `volumeRemoved` says whether rollback removed the volume the
 * job had created (undefined when it created none, or completed).
 */
export function jobEndedLog(ended: Job, volumeRemoved: boolean | undefined): Record<string, unknown> {
  return {
    ...jobLogFields(ended),
    status: ended.status,
    ...(ended.status === 'completed'
      ? {}
      : {
          stage: ended.stage,
          error_code: ended.errorCode,
          error: ended.error === null ? null : withoutUrlQueries(ended.error),
        }),
    cache_hit: ended.cacheHit,
    ...(volumeRemoved === undefined ? {} : { volume_removed: volumeRemoved }),
    duration_seconds: seconds(ended.startedAt ?? ended.createdAt, ended.updatedAt),
    msg: `job ${ended.status}`,
  };
}

/** Seconds between two ISO timestamps, to the millisecond. */
export function seconds(from: string, to: string): number {
  return (Date.parse(to) - Date.parse(from)) / 1000;
}
