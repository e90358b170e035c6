import { Module } from '@nestjs/common';
import { Decompressor } from './decompressor';
import { QemuImg } from './qemu-img';

@Module({ providers: [QemuImg, Decompressor], exports: [QemuImg, Decompressor] })
export class ConvertModule {}
