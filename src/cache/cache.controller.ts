import { Controller, Delete, Get, HttpCode, Inject, Param } from '@nestjs/common';
import {
  ApiConflictResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import { ErrorBodyDto } from '../common/error-body.dto';
import { BASE_STORE, type BaseCatalog } from './base-store';
import { ShaParamPipe } from './sha-param.pipe';
import { CacheListDto } from './cache.dto';
import { ImageCache } from './image-cache.service';

@ApiTags('cache')
@Controller('api/v1/cache')
export class CacheController {
  constructor(
    private readonly cache: ImageCache,
    @Inject(BASE_STORE) private readonly bases: BaseCatalog,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Cached images, totals and hit/miss counters', operationId: 'listCache' })
  @ApiOkResponse({ type: CacheListDto })
  list(): CacheListDto {
    const entries = this.cache.list().map(({ entry, readers, expandedBytes }) => ({
      sha256: entry.sha256,
      size: entry.size,
      expanded_bytes: expandedBytes,
      format: entry.format,
      sources: entry.sources,
      created_at: entry.createdAt,
      last_used_at: entry.lastUsedAt,
      use_count: entry.useCount,
      in_use_by: readers,
    }));
    const bases = this.bases.list().map((base) => ({
      sha256: base.sha256,
      virtual_size: base.virtualSize,
      size: base.allocatedBytes,
      raw_sha256: base.rawSha256,
      created_at: base.createdAt,
      last_used_at: base.lastUsedAt,
      cloning: base.cloning,
    }));
    return {
      entries,
      total_bytes: entries.reduce((sum, e) => sum + e.size + e.expanded_bytes, 0),
      total_entries: entries.length,
      max_bytes: this.cache.limits.maxBytes,
      max_entries: this.cache.limits.maxEntries,
      hits: this.cache.counters.hits,
      misses: this.cache.counters.misses,
      evictions: this.cache.counters.evictions,
      bases,
      base_total_bytes: bases.reduce((sum, b) => sum + b.size, 0),
      base_max_bytes: this.bases.limits.maxBytes,
      base_max_count: this.bases.limits.maxCount,
    };
  }

  @Delete(':sha256')
  @HttpCode(204)
  @ApiOperation({
    summary:
      'Delete a cached image and its golden bases (refused while a job reads it); clones made from them stay',
    operationId: 'deleteCacheEntry',
  })
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorBodyDto })
  @ApiConflictResponse({ type: ErrorBodyDto, description: 'A running job reads it' })
  async remove(@Param('sha256', ShaParamPipe) sha256: string): Promise<void> {
    await this.cache.remove(sha256);
  }
}
