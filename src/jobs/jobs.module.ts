import { Module } from '@nestjs/common';
import { CacheModule } from '../cache/cache.module';
import { ConvertModule } from '../convert/convert.module';
import { VolumesModule } from '../volumes/volumes.module';
import { StorageModule } from '../storage/storage.module';
import { JobEventsController } from './job-events.controller';
import { JobRepository } from './job.repository';
import { JobRecovery } from './job-recovery';
import { JobRunner } from './job-runner';
import { JobsController } from './jobs.controller';
import { JobsService } from './jobs.service';
import { PrefetchController } from './prefetch.controller';
import { ProvisionPipeline } from './pipeline/provision.pipeline';

@Module({
  imports: [StorageModule, CacheModule, ConvertModule, VolumesModule],
  controllers: [JobsController, JobEventsController, PrefetchController],
  providers: [JobRepository, JobRunner, JobRecovery, JobsService, ProvisionPipeline],
  exports: [JobsService, JobRunner],
})
export class JobsModule {}
