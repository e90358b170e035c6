import { Body, Controller, Headers, HttpCode, Post, Res } from '@nestjs/common';
import { ApiAcceptedResponse, ApiBadRequestResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ErrorBodyDto } from '../common/error-body.dto';
import { RequestId } from '../common/request-id.decorator';
import { PrefetchRequestDto, ProvisionAcceptedDto } from './dto/provision-request.dto';
import { JobsService } from './jobs.service';
import { submitAnswer } from './submit-answer';

/**
 * A prefetch is a job (queued, followed, cancelled like any other) that fills the cache and writes
 * no volume: it lives with the jobs, under the cache's URL.
 */
@ApiTags('cache')
@Controller('api/v1/cache')
export class PrefetchController {
  constructor(private readonly jobs: JobsService) {}

  @Post('prefetch')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Fill the cache with an image (a job that writes no volume)',
    operationId: 'prefetch',
  })
  @ApiAcceptedResponse({ type: ProvisionAcceptedDto })
  @ApiBadRequestResponse({ type: ErrorBodyDto })
  async prefetch(
    @Body() body: PrefetchRequestDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @RequestId() requestId: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ProvisionAcceptedDto> {
    const submitted = await this.jobs.prefetch(
      { ...body },
      { idempotencyKey: idempotencyKey || undefined, requestId },
    );
    return submitAnswer(submitted, reply);
  }
}
