import { Module } from '@nestjs/common';
import { ConvertModule } from '../convert/convert.module';
import { StorageModule } from '../storage/storage.module';
import { CacheController } from './cache.controller';
import { CacheRepository } from './cache.repository';
import { ImageCache } from './image-cache.service';
import { IMAGE_STORE } from './image-store';

@Module({
  imports: [StorageModule, ConvertModule],
  controllers: [CacheController],
  providers: [CacheRepository, ImageCache, { provide: IMAGE_STORE, useExisting: ImageCache }],
  exports: [IMAGE_STORE, ImageCache],
})
export class CacheModule {}
