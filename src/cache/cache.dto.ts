import { ApiProperty } from '@nestjs/swagger';

export class CacheSourceDto {
  @ApiProperty()
  url!: string;

  @ApiProperty()
  etag!: string;
}

export class CacheEntryDto {
  @ApiProperty({ example: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' })
  sha256!: string;

  @ApiProperty({ description: 'Bytes on disk (the image as published, e.g. compressed qcow2)' })
  size!: number;

  @ApiProperty({
    description:
      'Bytes of its expanded copy (a qcow2 with compressed clusters, rewritten without compression, which jobs read instead), 0 when there is none',
  })
  expanded_bytes!: number;

  @ApiProperty({ example: 'qcow2', description: 'Format detected from the file header' })
  format!: string;

  @ApiProperty({ type: [CacheSourceDto], description: 'Object versions this image was downloaded from' })
  sources!: CacheSourceDto[];

  @ApiProperty()
  created_at!: string;

  @ApiProperty()
  last_used_at!: string;

  @ApiProperty()
  use_count!: number;

  @ApiProperty({ description: 'Running jobs reading it now (an entry in use is never evicted or deleted)' })
  in_use_by!: number;
}

export class CacheListDto {
  @ApiProperty({ type: [CacheEntryDto], description: 'Most recently used first' })
  entries!: CacheEntryDto[];

  @ApiProperty({ description: 'Bytes counted against CACHE_MAX_BYTES: the images and their expanded copies' })
  total_bytes!: number;

  @ApiProperty()
  total_entries!: number;

  @ApiProperty({ description: 'CACHE_MAX_BYTES' })
  max_bytes!: number;

  @ApiProperty({ description: 'CACHE_MAX_ENTRIES' })
  max_entries!: number;

  @ApiProperty({ description: 'Jobs served from the cache since the daemon started' })
  hits!: number;

  @ApiProperty({ description: 'Jobs that had to download since the daemon started' })
  misses!: number;

  @ApiProperty({ description: 'Entries evicted since the daemon started' })
  evictions!: number;
}
