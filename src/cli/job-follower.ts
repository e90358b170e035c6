import type { JobStatusDto } from '../jobs/dto/job-status.dto';
import { ApiClient, ApiError, AuthError, CliError, ConnectionError, readText } from './api-client';
import { SseParser } from './sse-parser';

export interface FollowOptions {
  /** Every event as the daemon sent it: `state`, `status`, `stage`, `progress`, `end`. */
  onEvent(event: string, status: JobStatusDto): void;
  /** Connection news for the operator (lost, retrying, back). */
  onNotice(text: string): void;
  /** Keep trying this long after the daemon was lost (ms). */
  retryForMs: number;
  /** The daemon answered before (e.g. the POST that made the job): a refused first connection is then worth retrying. */
  reachedBefore: boolean;
  /** Stops following (Ctrl-C); followJob then resolves with undefined. */
  signal: AbortSignal;
  /** A stream silent this long (not even a heartbeat) counts as lost (ms). */
  idleMs?: number;
}

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5_000;
const DEFAULT_IDLE_MS = 60_000;

/**
 * Follows a job's event stream until its final state, reconnecting with back-off when the
 * connection drops or the daemon restarts. Each connection starts with a `state` event carrying
 * the whole status, so nothing is lost in a gap; the daemon numbers events per connection, and
 * Last-Event-ID is sent as the SSE standard asks, for a daemon or proxy that can use it.
 * Resolves with the final status (the `end` event), or undefined when `signal` aborted.
 */
export async function followJob(
  client: ApiClient,
  jobId: string,
  options: FollowOptions,
): Promise<JobStatusDto | undefined> {
  const parser = new SseParser();
  let reached = options.reachedBefore;
  let attempt = 0;
  let lostSince: number | undefined;
  for (;;) {
    if (options.signal.aborted) return undefined;
    let lost: string;
    try {
      const result = await streamOnce(client, jobId, parser, options, () => {
        reached = true;
        if (lostSince !== undefined) options.onNotice(`reconnected to ${client.base.origin}`);
        lostSince = undefined;
        attempt = 0;
      });
      if (result.final) return result.final;
      if (options.signal.aborted) return undefined;
      lost = 'the event stream ended before the job did';
    } catch (error) {
      if (options.signal.aborted) return undefined;
      if (error instanceof AuthError) throw error;
      // 404 and the like: the daemon knows no such job; asking again will not change that.
      if (error instanceof ApiError && error.status < 500) throw error;
      if (error instanceof ConnectionError && !reached) throw error;
      if (!(error instanceof CliError)) throw error;
      lost = error.message;
    }
    lostSince ??= Date.now();
    const waited = Date.now() - lostSince;
    if (waited >= options.retryForMs) {
      throw new ConnectionError(
        `lost the daemon for ${Math.round(waited / 1000)} s (--retry-for): ${lost}; ` +
          `the job may still run: lvp status ${jobId}`,
      );
    }
    const delay = Math.min(
      MAX_DELAY_MS,
      parser.retryMs ?? FIRST_DELAY_MS * 2 ** attempt,
      options.retryForMs - waited,
    );
    attempt++;
    options.onNotice(`${lost}; reconnecting in ${(delay / 1000).toFixed(delay < 1000 ? 2 : 0)} s`);
    await sleep(delay, options.signal);
  }
}

/** One connection: resolves when it ends, with the final status if the `end` event came. */
function streamOnce(
  client: ApiClient,
  jobId: string,
  parser: SseParser,
  options: FollowOptions,
  connected: () => void,
): Promise<{ final?: JobStatusDto }> {
  const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  return client
    .open(
      'GET',
      `/api/v1/jobs/${encodeURIComponent(jobId)}/events`,
      {
        accept: 'text/event-stream',
        ...(parser.lastEventId === undefined ? {} : { 'last-event-id': parser.lastEventId }),
      },
      options.signal,
    )
    .then(async ({ response, request }) => {
      if (response.statusCode !== 200) throw client.refusal(response.statusCode!, await readText(response));
      connected();
      return new Promise<{ final?: JobStatusDto }>((resolve, reject) => {
        let settled = false;
        let idle: NodeJS.Timeout | undefined;
        const settle = (outcome: { final?: JobStatusDto } | Error) => {
          if (settled) return;
          settled = true;
          clearTimeout(idle);
          request.destroy();
          if (outcome instanceof Error) reject(outcome);
          else resolve(outcome);
        };
        const arm = () => {
          clearTimeout(idle);
          idle = setTimeout(
            () => settle(new ConnectionError(`no event or heartbeat for ${Math.round(idleMs / 1000)} s`)),
            idleMs,
          );
        };
        arm();
        response.setEncoding('utf8');
        response.on('data', (text: string) => {
          arm();
          for (const message of parser.push(text)) {
            let status: JobStatusDto;
            try {
              status = JSON.parse(message.data) as JobStatusDto;
            } catch {
              continue; // not a status: nothing this client knows how to show
            }
            if (settled) return;
            options.onEvent(message.event, status);
            if (message.event === 'end') return settle({ final: status });
          }
        });
        const lost = (error: Error) =>
          settle(
            error instanceof CliError
              ? error
              : new ConnectionError(`lost the connection to ${client.base.origin} (${error.message})`),
          );
        response.on('error', lost);
        request.on('error', lost);
        response.on('end', () => settle({}));
        response.on('close', () => settle({}));
      });
    });
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
