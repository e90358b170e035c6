import { Module } from '@nestjs/common';
import { Settings } from '../config/settings';
import { FileBackend } from './file.backend';
import { VOLUME_BACKEND } from './volume-backend';

@Module({
  providers: [
    FileBackend,
    {
      provide: VOLUME_BACKEND,
      inject: [Settings, FileBackend],
      useFactory: (settings: Settings, file: FileBackend) => {
        if (settings.volumeBackend === 'file') return file;
        throw new Error(
          `VOLUME_BACKEND=${settings.volumeBackend} is not available in this build yet; use VOLUME_BACKEND=file`,
        );
      },
    },
  ],
  exports: [VOLUME_BACKEND],
})
export class LvmModule {}
