import { Module } from '@nestjs/common';
import { HttpSource } from './http.source';
import { IMAGE_SOURCES } from './image-source';

@Module({
  providers: [
    HttpSource,
    { provide: IMAGE_SOURCES, useFactory: (http: HttpSource) => [http], inject: [HttpSource] },
  ],
  exports: [IMAGE_SOURCES],
})
export class StorageModule {}
