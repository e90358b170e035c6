import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { JobRepository } from './job.repository';
import { jobLogFields } from './job-log';
import { JobRunner } from './job-runner';
import type { Job } from './job.model';

/**
 * Before the API accepts anything: a job left `running` was interrupted and ends as failed through
 * the runner's finish(), whose rollback removes the volume it had created. Pending jobs run again
 * after a clean shutdown; after a crash they end as failed too, since nobody can tell how long ago
 * they were asked for.
 */
@Injectable()
export class JobRecovery implements OnModuleInit {
  private readonly logger = new Logger(JobRecovery.name);

  constructor(
    private readonly repository: JobRepository,
    private readonly runner: JobRunner,
  ) {}

  async onModuleInit(): Promise<void> {
    const clean = this.repository.state('clean_shutdown') !== undefined;
    this.repository.setState('clean_shutdown', undefined);
    const resume: Job[] = [];
    for (const job of this.repository.withStatus(['running', 'pending'])) {
      if (clean && job.status === 'pending') resume.push(job);
      else await this.runner.endInterrupted(job);
    }
    for (const job of resume) {
      this.logger.log({ ...jobLogFields(job), msg: 'resuming a job left pending by a clean shutdown' });
      this.runner.enqueue(job);
    }
  }
}
