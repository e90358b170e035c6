import { Module } from '@nestjs/common';
import { Settings } from '../config/settings';
import { QemuImg } from '../convert/qemu-img';
import { ConvertModule } from '../convert/convert.module';
import { StorageModule } from '../storage/storage.module';
import { BASE_STORE } from './base-store';
import { GoldenBaseCatalog } from './bases/base-catalog';
import { FileBaseStorage } from './bases/file-base-storage';
import { ThinBaseStorage } from './bases/thin-base-storage';
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
      // One catalog of golden bases; its storage by backend: thin LVs on lvm-thin, reflinked files
      // otherwise (FileBaseStorage says why file volumes on a filesystem without reflinks, and
      // thick LVs, convert).
      provide: BASE_STORE,
      inject: [Settings, QemuImg, LvmCli],
      useFactory: (settings: Settings, qemuImg: QemuImg, lvm: LvmCli) =>
        new GoldenBaseCatalog(
          settings,
          settings.volumes.backend === 'lvm-thin'
            ? new ThinBaseStorage(settings, qemuImg, lvm)
            : new FileBaseStorage(settings, qemuImg),
        ),
    },
  ],
  exports: [IMAGE_STORE, ImageCache, BASE_STORE],
})
export class CacheModule {}
