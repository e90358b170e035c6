import { Body, Controller, Delete, Get, Headers, HttpCode, Param, Post, Res } from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiConflictResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ErrorBodyDto } from '../jobs/dto/error-body.dto';
import { PrefetchRequestDto, ProvisionAcceptedDto } from '../jobs/dto/provision-request.dto';
import { JobsService } from '../jobs/jobs.service';
import { ShaParamPipe } from './sha-param.pipe';
import { CacheListDto } from './cache.dto';
import { ImageCache } from './image-cache.service';
import { RequestId } from '../common/request-id.decorator';

@ApiTags('cache')
@Controller('api/v1/cache')
export class CacheController {
  constructor(
    private readonly cache: ImageCache,
    private readonly jobs: JobsService,
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
    return {
      entries,
      total_bytes: entries.reduce((sum, e) => sum + e.size + e.expanded_bytes, 0),
      total_entries: entries.length,
      max_bytes: this.cache.limits.maxBytes,
      max_entries: this.cache.limits.maxEntries,
      hits: this.cache.counters.hits,
      misses: this.cache.counters.misses,
      evictions: this.cache.counters.evictions,
    };
  }

  @Delete(':sha256')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete a cached image (refused while a job reads it)',
    operationId: 'deleteCacheEntry',
  })
  @ApiNoContentResponse()
  @ApiNotFoundResponse({ type: ErrorBodyDto })
  @ApiConflictResponse({ type: ErrorBodyDto, description: 'A running job reads it' })
  async remove(@Param('sha256', ShaParamPipe) sha256: string): Promise<void> {
    await this.cache.remove(sha256);
  }

  @Post('prefetch')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Fill the cache with an image (a job that writes no volume)',
    operationId: 'prefetch',
  })
  @ApiAcceptedResponse({ type: ProvisionAcceptedDto })
  async prefetch(
    @Body() body: PrefetchRequestDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @RequestId() requestId: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ProvisionAcceptedDto> {
    const { job, replayed } = await this.jobs.prefetch(
      { ...body },
      {
        idempotencyKey: idempotencyKey || undefined,
        requestId,
      },
    );
    if (replayed) reply.status(200);
    return { job_id: job.id, status: job.status, status_url: `/api/v1/status/${job.id}` };
  }
}
