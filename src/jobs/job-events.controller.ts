import { Controller, Get, Param, ParseUUIDPipe, Req, Res } from '@nestjs/common';
import { ApiNotFoundResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Settings } from '../config/settings';
import { ErrorBodyDto } from '../common/error-body.dto';
import { JobStatusDto } from './dto/job-status.dto';
import { JobsService } from './jobs.service';

/** Server-Sent Events: a job's state at once, every change after, a final `end` event, then close. */
@ApiTags('jobs')
@Controller('api/v1/jobs')
export class JobEventsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly settings: Settings,
  ) {}

  @Get(':job_id/events')
  @ApiOperation({
    summary: 'Follow a job as Server-Sent Events',
    description:
      'Events: `state` (at once), `status`, `stage`, `progress`, and a final `end`; each `data` is the job status ' +
      'as JSON. A `: heartbeat` comment is sent periodically. The stream closes after `end`.',
    operationId: 'jobEvents',
  })
  @ApiProduces('text/event-stream')
  @ApiNotFoundResponse({ type: ErrorBodyDto })
  events(
    @Param('job_id', new ParseUUIDPipe({ version: '4', errorHttpStatusCode: 404 })) jobId: string,
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
  ): void {
    const events$ = this.jobs.watch(jobId); // 404 before anything is streamed
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-request-id': String(request.id),
    });
    let eventId = 0;
    const heartbeat = setInterval(
      () => raw.write(': heartbeat\n\n'),
      this.settings.sseHeartbeatSeconds * 1000,
    );
    const subscription = events$.subscribe({
      next: ({ event, job }) => {
        const data = JobStatusDto.from(job, this.jobs.queuePosition(job.id));
        raw.write(`id: ${++eventId}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      },
      complete: () => {
        clearInterval(heartbeat);
        raw.end();
      },
      error: () => {
        clearInterval(heartbeat);
        raw.end();
      },
    });
    // A client that goes away only stops its own stream; the job goes on.
    raw.on('close', () => {
      clearInterval(heartbeat);
      subscription.unsubscribe();
    });
  }
}
