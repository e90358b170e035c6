import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { CacheModule } from '../cache/cache.module';
import { JobsModule } from '../jobs/jobs.module';
import { ConvertModule } from '../convert/convert.module';
import { VolumesModule } from '../volumes/volumes.module';
import { StorageModule } from '../storage/storage.module';
import { DatabaseIndicator } from './database.indicator';
import { HealthController } from './health.controller';
import { QemuImgIndicator } from './qemu-img.indicator';
import { ReadinessService } from './readiness.service';
import { S3Indicator } from './s3.indicator';
import { StorageIndicators } from './storage.indicators';

/** Liveness and readiness probes (terminus). Readiness changes are logged by ReadinessService. */
@Module({
  // terminus would log every failing probe; ReadinessService logs only the changes.
  imports: [
    TerminusModule.forRoot({ logger: false }),
    ConvertModule,
    JobsModule,
    CacheModule,
    VolumesModule,
    StorageModule,
  ],
  controllers: [HealthController],
  providers: [DatabaseIndicator, StorageIndicators, QemuImgIndicator, S3Indicator, ReadinessService],
  exports: [ReadinessService],
})
export class HealthModule {}
