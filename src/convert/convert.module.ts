import { Module } from '@nestjs/common';
import { Decompressor } from './decompressor';
import { InspectionMemo } from './inspection-memo';
import { QemuImg } from './qemu-img';

@Module({
  providers: [QemuImg, Decompressor, InspectionMemo],
  exports: [QemuImg, Decompressor, InspectionMemo],
})
export class ConvertModule {}
