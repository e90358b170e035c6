import { Global, Module, OnApplicationShutdown, Inject } from '@nestjs/common';
import type { Database } from 'better-sqlite3';
import { Settings } from '../config/settings';
import { DATABASE, openDatabase } from './database';

@Global()
@Module({
  providers: [
    {
      provide: DATABASE,
      useFactory: (settings: Settings) => openDatabase(settings.dbPath),
      inject: [Settings],
    },
  ],
  exports: [DATABASE],
})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(DATABASE) private readonly db: Database) {}

  onApplicationShutdown(): void {
    this.db.close();
  }
}
