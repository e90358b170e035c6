import { Module } from '@nestjs/common';
import { ConvertModule } from '../convert/convert.module';
import { StorageModule } from '../storage/storage.module';
import { BASE_STORE } from './base-store';
import { GoldenBases } from './bases/golden-bases';
import { CacheController } from './cache.controller';
import { CacheRepository } from './cache.repository';
import { ImageCache } from './image-cache.service';
import { IMAGE_STORE } from './image-store';

@Module({
  imports: [StorageModule, ConvertModule],
  controllers: [CacheController],
  providers: [
    CacheRepository,
    ImageCache,
    GoldenBases,
    { provide: IMAGE_STORE, useExisting: ImageCache },
    { provide: BASE_STORE, useExisting: GoldenBases },
  ],
  exports: [IMAGE_STORE, ImageCache, BASE_STORE, GoldenBases],
})
export class CacheModule {}
