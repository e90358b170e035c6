import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { IMAGE_STORE, type ImageStore } from '../cache/image-store';
import { ResumeLimitError } from '../common/errors';
import { removeStaleExportDirs } from '../convert/nbd/nbd-export';
import { Settings } from '../config/settings';
import { JobRepository } from './job.repository';
import { jobLogFields } from './job-log';
import { JobRunner } from './job-runner';
import type { Job } from './job.model';

/**
 * Before the API accepts anything: pending jobs are queued again in their original order, after
 * any stop. A job left `running` was interrupted by a crash: it resumes (RESUME_INTERRUPTED; its
 * download goes on from the partial file in the cache's tmp/, and a volume it created stays its
 * own), unless crashes interrupted it more than RESUME_MAX times; otherwise it ends as failed
 * through the runner's finish(), whose rollback removes the volume it had created.
 */
@Injectable()
export class JobRecovery implements OnModuleInit {
  private readonly logger = new Logger(JobRecovery.name);

  constructor(
    private readonly settings: Settings,
    private readonly repository: JobRepository,
    private readonly runner: JobRunner,
    @Inject(IMAGE_STORE) private readonly store: ImageStore,
  ) {}

  async onModuleInit(): Promise<void> {
    const clean = this.repository.state('clean_shutdown') !== undefined;
    this.repository.setState('clean_shutdown', undefined);
    const { resumeInterrupted, resumeMax } = this.settings.jobs;
    const queue: Job[] = [];
    const resumed: Job[] = [];
    // In the order they were submitted: that is the order they run in again.
    for (const job of this.repository.withStatus(['running', 'pending'])) {
      if (job.status === 'pending') queue.push(job);
      else if (!resumeInterrupted) await this.runner.endInterrupted(job);
      else if (job.resumed >= resumeMax) {
        await this.runner.endInterrupted(job, new ResumeLimitError(job.resumed + 1, resumeMax));
      } else {
        const again: Job = {
          ...job,
          status: 'pending',
          resumed: job.resumed + 1,
          resumedFromBytes: null,
          updatedAt: new Date().toISOString(),
        };
        this.repository.save(again);
        queue.push(again);
        resumed.push(again);
      }
    }
    await this.store.partials.adopt(resumed.map((job) => job.request.image_url));
    // The sockets of streamed writes a crash interrupted (their jobs write again from the start).
    const stale = await removeStaleExportDirs();
    if (stale > 0)
      this.logger.log({ removed: stale, msg: 'removed the NBD export directories of a daemon that died' });
    for (const job of queue) {
      const interrupted = resumed.includes(job);
      this.logger.log({
        ...jobLogFields(job),
        ...(interrupted ? { resumed: job.resumed, stage: job.stage } : {}),
        msg: interrupted
          ? 'resuming a job a crash interrupted'
          : `queuing again a job left pending by ${clean ? 'a clean shutdown' : 'a crash'}`,
      });
      this.runner.enqueue(job);
    }
  }
}
