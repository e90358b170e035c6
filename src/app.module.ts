import { DynamicModule, Module } from '@nestjs/common';
import { AuthModule } from './auth/auth.module';
import { DatabaseModule } from './common/database.module';
import { ConfigModule } from './config/config.module';
import { Settings } from './config/settings';
import { HealthModule } from './health/health.module';
import { JobsModule } from './jobs/jobs.module';
import { MetricsModule } from './metrics/metrics.module';

@Module({})
export class AppModule {
  static forSettings(settings: Settings): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forSettings(settings),
        AuthModule,
        DatabaseModule,
        JobsModule,
        HealthModule,
        MetricsModule,
      ],
    };
  }
}
