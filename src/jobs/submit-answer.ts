import type { FastifyReply } from 'fastify';
import type { ProvisionAcceptedDto } from './dto/provision-request.dto';
import type { Job } from './job.model';

/**
 * The answer to an accepted submit (provision or prefetch): 202 with where to poll, or 200 when
 * an Idempotency-Key replayed an earlier job.
 */
export function submitAnswer(
  { job, replayed }: { job: Job; replayed: boolean },
  reply: FastifyReply,
): ProvisionAcceptedDto {
  if (replayed) reply.status(200);
  return { job_id: job.id, status: job.status, status_url: `/api/v1/status/${job.id}` };
}
