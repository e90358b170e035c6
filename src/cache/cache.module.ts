import { Module } from '@nestjs/common';
import { StorageModule } from '../storage/storage.module';
import { DownloadStore } from './download.store';
import { IMAGE_STORE } from './image-store';

@Module({
  imports: [StorageModule],
  providers: [DownloadStore, { provide: IMAGE_STORE, useExisting: DownloadStore }],
  exports: [IMAGE_STORE],
})
export class CacheModule {}
