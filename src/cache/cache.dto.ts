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

export class CacheBaseDto {
  @ApiProperty({ description: 'sha256 of the image (as published) the base holds' })
  sha256!: string;

  @ApiProperty({
    description: "The image's virtual size: the base's length in bytes (a base LV: rounded up to an extent)",
  })
  virtual_size!: number;

  @ApiProperty({
    description:
      'Bytes of blocks it occupies (file: its allocated blocks; lvm-thin: the thin-pool data it pins), counted against BASE_MAX_BYTES; its clones share them',
  })
  size!: number;

  @ApiProperty({
    description: 'sha256 of its raw content, computed when it was made and verified against the image',
  })
  raw_sha256!: string;

  @ApiProperty()
  created_at!: string;

  @ApiProperty({ description: 'When a volume was last cloned from it' })
  last_used_at!: string;

  @ApiProperty({ description: 'Clones being made from it now (a base in use is never evicted)' })
  cloning!: number;
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

  @ApiProperty({
    type: [CacheBaseDto],
    description:
      'Golden bases new volumes are cloned from (file: VOLUME_DIR/.lvp-bases, reflinks; lvm-thin: read-only thin LVs lvp-base-<hex16>, thin snapshots), most recently used first',
  })
  bases!: CacheBaseDto[];

  @ApiProperty({ description: 'Bytes the bases occupy (counted against BASE_MAX_BYTES)' })
  base_total_bytes!: number;

  @ApiProperty({ description: 'BASE_MAX_BYTES' })
  base_max_bytes!: number;

  @ApiProperty({ description: 'BASE_MAX_COUNT' })
  base_max_count!: number;
}
