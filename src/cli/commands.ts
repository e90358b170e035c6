import type { CacheListDto } from '../cache/cache.dto';
import type { JobListDto, JobListQueryDto } from '../jobs/dto/job-list.dto';
import type { JobStatusDto } from '../jobs/dto/job-status.dto';
import type {
  PrefetchRequestDto,
  ProvisionAcceptedDto,
  ProvisionRequestDto,
} from '../jobs/dto/provision-request.dto';
import { ApiClient, ApiError } from './api-client';
import { EXIT, exitCodeForStatus, type ExitCode } from './exit-codes';
import { cacheText, jobsText, statusText } from './format';
import { InterruptHandler } from './interrupt';
import { followJob } from './job-follower';
import { JsonLinesView, ProgressBarsView, type JobView } from './job-view';

/** What every command gets: the client, and how to print. */
export interface CommandContext {
  client: ApiClient;
  /** JSON output: --json, or stdout is not a terminal. */
  json: boolean;
  /** Keep reconnecting this long after losing the daemon while following a job (ms). */
  retryForMs: number;
}

/**
 * What /health and /readyz answer. There is no DTO class for the probes (terminus builds their
 * bodies), so this names only the fields lvp reads; the rest is printed as it came.
 */
interface ProbeBody {
  status: string;
  uptime_seconds?: number;
  active_jobs?: number;
  queued_jobs?: number;
  /** terminus: the indicators that failed, by name. */
  error?: Record<string, { status: string; message?: string } & Record<string, unknown>>;
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

const jobPath = (jobId: string) => encodeURIComponent(jobId);

export interface SubmitOptions {
  checksum?: string;
  correlationId?: string;
  idempotencyKey?: string;
  wait?: boolean;
}

export async function provision(
  ctx: CommandContext,
  imageUrl: string,
  volumeName: string,
  options: SubmitOptions & { size: number; type: string },
): Promise<ExitCode> {
  const body = {
    image_url: imageUrl,
    volume_name: volumeName,
    volume_size_gb: options.size,
    image_type: options.type,
    ...optional(options),
  } satisfies ProvisionRequestDto;
  return submit(ctx, '/api/v1/provision', body, options);
}

export async function prefetch(ctx: CommandContext, imageUrl: string, options: SubmitOptions) {
  const body = { image_url: imageUrl, ...optional(options) } satisfies PrefetchRequestDto;
  return submit(ctx, '/api/v1/cache/prefetch', body, options);
}

function optional(options: SubmitOptions): Partial<PrefetchRequestDto> {
  return {
    ...(options.checksum ? { checksum: options.checksum } : {}),
    ...(options.correlationId ? { correlation_id: options.correlationId } : {}),
  };
}

async function submit(
  ctx: CommandContext,
  path: string,
  body: PrefetchRequestDto,
  options: SubmitOptions,
): Promise<ExitCode> {
  const { body: accepted } = await ctx.client.json<ProvisionAcceptedDto>(
    'POST',
    path,
    body,
    options.idempotencyKey ? { 'idempotency-key': options.idempotencyKey } : {},
  );
  if (!options.wait) {
    if (ctx.json) printJson(accepted);
    else {
      process.stdout.write(`${accepted.job_id}\n`);
      process.stderr.write(
        `job ${accepted.job_id} ${accepted.status}; follow it with: lvp watch ${accepted.job_id}\n`,
      );
    }
    return EXIT.ok;
  }
  return follow(ctx, accepted.job_id, true, accepted);
}

export function watch(ctx: CommandContext, jobId: string): Promise<ExitCode> {
  return follow(ctx, jobId, false);
}

/** Follows a job to its end with bars or JSON lines; Ctrl-C asks (or detaches). */
async function follow(
  ctx: CommandContext,
  jobId: string,
  reachedBefore: boolean,
  accepted?: ProvisionAcceptedDto,
): Promise<ExitCode> {
  const view: JobView = ctx.json ? new JsonLinesView() : new ProgressBarsView();
  if (accepted) view.accepted(accepted);
  const stop = new AbortController();
  let detached = false;
  const interrupts = new InterruptHandler({
    jobId,
    view,
    interactive: Boolean(process.stdin.isTTY && process.stderr.isTTY),
    cancel: async () => {
      await ctx.client.json<JobStatusDto>('DELETE', `/api/v1/cancel/${jobPath(jobId)}`);
    },
    detach: () => {
      detached = true;
      stop.abort();
    },
  });
  try {
    const final = await followJob(ctx.client, jobId, {
      onEvent: (event, status) => view.event(event, status),
      onNotice: (text) => view.notice(text),
      retryForMs: ctx.retryForMs,
      reachedBefore,
      signal: stop.signal,
    });
    interrupts.dispose();
    view.close(final);
    if (!final || detached) {
      process.stderr.write(
        `lvp: stopped following job ${jobId}; it goes on. Follow it again with: lvp watch ${jobId}\n`,
      );
      if (ctx.json) printJson({ event: 'detached', job_id: jobId });
      return EXIT.detached;
    }
    return exitCodeForStatus(final.status);
  } catch (error) {
    interrupts.dispose();
    view.close(undefined);
    throw error;
  }
}

export async function status(ctx: CommandContext, jobId: string): Promise<ExitCode> {
  const { body } = await ctx.client.json<JobStatusDto>('GET', `/api/v1/status/${jobPath(jobId)}`);
  if (ctx.json) printJson(body);
  else process.stdout.write(`${statusText(body)}\n`);
  return exitCodeForStatus(body.status);
}

export async function cancel(ctx: CommandContext, jobId: string): Promise<ExitCode> {
  const { body } = await ctx.client.json<JobStatusDto>('DELETE', `/api/v1/cancel/${jobPath(jobId)}`);
  if (ctx.json) printJson(body);
  else process.stdout.write(`job ${body.job_id} ${body.status}${body.error ? `: ${body.error}` : ''}\n`);
  return EXIT.ok;
}

export async function jobs(
  ctx: CommandContext,
  filter: Partial<Pick<JobListQueryDto, 'status' | 'kind' | 'volume' | 'limit' | 'offset'>>,
): Promise<ExitCode> {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(filter)) {
    if (value !== undefined) query.set(key, String(value));
  }
  const search = query.size > 0 ? `?${query}` : '';
  const { body } = await ctx.client.json<JobListDto>('GET', `/api/v1/jobs${search}`);
  if (ctx.json) printJson(body);
  else process.stdout.write(`${jobsText(body)}\n`);
  return EXIT.ok;
}

export async function cacheList(ctx: CommandContext): Promise<ExitCode> {
  const { body } = await ctx.client.json<CacheListDto>('GET', '/api/v1/cache');
  if (ctx.json) printJson(body);
  else process.stdout.write(`${cacheText(body)}\n`);
  return EXIT.ok;
}

export async function cacheRemove(ctx: CommandContext, sha256: string): Promise<ExitCode> {
  await ctx.client.json<undefined>('DELETE', `/api/v1/cache/${sha256.toLowerCase()}`);
  if (ctx.json) printJson({ removed: sha256.toLowerCase() });
  else process.stdout.write(`removed ${sha256.toLowerCase()}\n`);
  return EXIT.ok;
}

/** Liveness (or readiness with --ready): 0 when the daemon says it is fine, 1 when it says not. */
export async function health(ctx: CommandContext, ready: boolean): Promise<ExitCode> {
  let body: ProbeBody;
  let healthy = true;
  try {
    body = (await ctx.client.json<ProbeBody>('GET', ready ? '/readyz' : '/health')).body;
  } catch (error) {
    // A 503 from a probe carries its report (terminus's shape, not the API error body): show it.
    if (!(error instanceof ApiError) || error.status !== 503 || typeof error.parsed !== 'object') throw error;
    body = error.parsed as ProbeBody;
    healthy = false;
  }
  if (ctx.json) printJson(body);
  else {
    const facts = [
      body.uptime_seconds === undefined ? '' : `up ${body.uptime_seconds} s`,
      body.active_jobs === undefined ? '' : `${body.active_jobs} job(s) running`,
      body.queued_jobs === undefined ? '' : `${body.queued_jobs} queued`,
      ...Object.entries(body.error ?? {}).map(
        ([name, e]) => `${name}: ${e.status}${e.message ? ` (${e.message})` : ''}`,
      ),
    ].filter(Boolean);
    const word = healthy ? (ready ? 'ready' : body.status) : ready ? 'not ready' : body.status;
    process.stdout.write(`${word}${facts.length ? `: ${facts.join(', ')}` : ''}\n`);
  }
  return healthy ? EXIT.ok : EXIT.failed;
}
