import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '@nestjs/common';

/** The state-changing routes and what they do, for the audit line. */
const ACTIONS: [string, RegExp, string][] = [
  ['POST', /^\/api\/v1\/provision\/?$/, 'provision'],
  ['DELETE', /^\/api\/v1\/cancel\/([^/]+)$/, 'cancel'],
  ['POST', /^\/api\/v1\/cache\/prefetch\/?$/, 'prefetch'],
  ['DELETE', /^\/api\/v1\/cache\/([^/]+)$/, 'cache_delete'],
];

/**
 * One JSON line per state-changing request: who, what, which job, from where, and how it ended.
 * Called from an onSend hook, where the response body (with the job id) is known.
 */
export function auditLine(
  request: FastifyRequest,
  reply: FastifyReply,
  payload: unknown,
): Record<string, unknown> | undefined {
  const path = request.url.split('?')[0];
  const action = ACTIONS.find(([method, pattern]) => method === request.method && pattern.test(path));
  if (!action) return undefined;
  let jobId: string | undefined = action[2] === 'cancel' ? action[1].exec(path)?.[1] : undefined;
  if (typeof payload === 'string' && payload.startsWith('{')) {
    try {
      jobId = (JSON.parse(payload) as { job_id?: string }).job_id ?? jobId;
    } catch {
      // not JSON: no job id to add
    }
  }
  return {
    audit: true,
    action: action[2],
    principal: request.principal?.name ?? 'unauthenticated',
    principal_kind: request.principal?.kind ?? 'none',
    job_id: jobId,
    cache_entry: action[2] === 'cache_delete' ? action[1].exec(path)?.[1] : undefined,
    remote_address: request.ip,
    status: reply.statusCode,
    outcome: reply.statusCode < 400 ? 'accepted' : 'refused',
    request_id: request.id,
    msg: 'audit',
  };
}

export function logAudit(logger: Logger, line: Record<string, unknown> | undefined): void {
  if (line) logger.log(line);
}
