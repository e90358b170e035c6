import { Global, Module } from '@nestjs/common';
import { Settings } from './settings';

/** Makes the one Settings instance (built in main.ts before Nest starts) injectable everywhere. */
@Global()
@Module({})
export class ConfigModule {
  static forSettings(settings: Settings) {
    return {
      module: ConfigModule,
      providers: [{ provide: Settings, useValue: settings }],
      exports: [Settings],
    };
  }
}
