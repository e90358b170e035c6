import { Global, Module, OnApplicationShutdown, Inject, Logger } from '@nestjs/common';
import type { Database } from 'better-sqlite3';
import { Settings } from '../config/settings';
import { DATABASE, openDatabase } from './database';
import { WalCheckpointer } from './wal-checkpointer';

const CHECKPOINTER = Symbol('WalCheckpointer');

@Global()
@Module({
  providers: [
    {
      provide: DATABASE,
      useFactory: (settings: Settings) => openDatabase(settings.dbPath),
      inject: [Settings],
    },
    {
      // Its WAL is moved into the database file off the event loop (wal-checkpointer.ts).
      provide: CHECKPOINTER,
      useFactory: (db: Database) => WalCheckpointer.start(db, new Logger('Database')),
      inject: [DATABASE],
    },
  ],
  exports: [DATABASE],
})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(
    @Inject(DATABASE) private readonly db: Database,
    @Inject(CHECKPOINTER) private readonly checkpointer: WalCheckpointer,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.checkpointer.stop();
    this.db.close();
  }
}
