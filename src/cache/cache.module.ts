import { Module } from '@nestjs/common';
import { Settings } from '../config/settings';
import { QemuImg } from '../convert/qemu-img';
import { ConvertModule } from '../convert/convert.module';
import { StorageModule } from '../storage/storage.module';
import { BASE_STORE } from './base-store';
import { GoldenBases } from './bases/golden-bases';
import { ThinBases } from './bases/thin-bases';
import { LvmCli } from '../volumes/lvm-cli';
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
    LvmCli,
    { provide: IMAGE_STORE, useExisting: ImageCache },
    {
      // Golden bases by backend: thin LVs on lvm-thin, reflinked files otherwise (GoldenBases
      // says why file volumes on a filesystem without reflinks, and thick LVs, convert).
      provide: BASE_STORE,
      inject: [Settings, QemuImg, LvmCli],
      useFactory: (settings: Settings, qemuImg: QemuImg, lvm: LvmCli) =>
        settings.volumes.backend === 'lvm-thin'
          ? new ThinBases(settings, qemuImg, lvm)
          : new GoldenBases(settings, qemuImg),
    },
  ],
  exports: [IMAGE_STORE, ImageCache, BASE_STORE],
})
export class CacheModule {}
