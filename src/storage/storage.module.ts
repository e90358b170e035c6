import { Module } from '@nestjs/common';
import { AddressPolicy } from './address-policy';
import { HttpSource } from './http.source';
import { IMAGE_SOURCES } from './image-source';
import { S3Source } from './s3.source';

/** Image sources in the order they are asked: the S3 endpoint first, then plain HTTP(S). */
@Module({
  providers: [
    AddressPolicy,
    HttpSource,
    S3Source,
    {
      provide: IMAGE_SOURCES,
      useFactory: (s3: S3Source, http: HttpSource) => (s3.configured ? [s3, http] : [http]),
      inject: [S3Source, HttpSource],
    },
  ],
  exports: [IMAGE_SOURCES, S3Source, AddressPolicy],
})
export class StorageModule {}
