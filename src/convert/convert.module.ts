import { Module } from '@nestjs/common';
import { QemuImg } from './qemu-img';

@Module({ providers: [QemuImg], exports: [QemuImg] })
export class ConvertModule {}
