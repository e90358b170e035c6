import { Module } from '@nestjs/common';
import { Settings } from '../config/settings';
import { BlockDevice } from './block-device';
import { FileBackend } from './file.backend';
import { LvmCli } from './lvm-cli';
import { LvmThinBackend } from './lvm-thin.backend';
import { LvmBackend } from './lvm.backend';
import { Virsh } from './virsh';
import { VOLUME_BACKEND } from './volume-backend';

/** The volume backend VOLUME_BACKEND names; an LVM backend checks its VG (and pool) before start. */
@Module({
  providers: [
    LvmCli,
    BlockDevice,
    Virsh,
    {
      provide: VOLUME_BACKEND,
      inject: [Settings, LvmCli, BlockDevice],
      useFactory: async (settings: Settings, lvm: LvmCli, blocks: BlockDevice) => {
        switch (settings.volumes.backend) {
          case 'file':
            return new FileBackend(settings);
          case 'lvm': {
            const backend = new LvmBackend(settings, lvm, blocks);
            await backend.verify();
            return backend;
          }
          case 'lvm-thin': {
            const backend = new LvmThinBackend(settings, lvm, blocks);
            await backend.verify();
            return backend;
          }
        }
      },
    },
  ],
  exports: [VOLUME_BACKEND, Virsh],
})
export class VolumesModule {}
