import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import {
  ApiAcceptedResponse,
  ApiBadRequestResponse,
  ApiConflictResponse,
  ApiHeader,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { ErrorBodyDto } from '../common/error-body.dto';
import { JobListDto, JobListQueryDto } from './dto/job-list.dto';
import { JobStatusDto } from './dto/job-status.dto';
import { ProvisionAcceptedDto, ProvisionRequestDto } from './dto/provision-request.dto';
import { JobsService } from './jobs.service';
import { submitAnswer } from './submit-answer';
import { RequestId } from '../common/request-id.decorator';

const uuid = new ParseUUIDPipe({ version: '4', errorHttpStatusCode: 404 });

@ApiTags('jobs')
@Controller('api/v1')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Post('provision')
  @HttpCode(202)
  @ApiOperation({ summary: 'Provision a volume from an image', operationId: 'provision' })
  @ApiHeader({
    name: 'Idempotency-Key',
    required: false,
    description: 'Repeat-safe submit (remembered 24 h)',
  })
  @ApiAcceptedResponse({ type: ProvisionAcceptedDto, description: 'Job accepted' })
  @ApiOkResponse({
    type: ProvisionAcceptedDto,
    description: 'Same Idempotency-Key and body: the earlier job',
  })
  @ApiBadRequestResponse({ type: ErrorBodyDto })
  @ApiConflictResponse({ type: ErrorBodyDto, description: 'Volume busy, in use, or of another size' })
  @ApiUnprocessableEntityResponse({
    type: ErrorBodyDto,
    description: 'Idempotency-Key reused with another body',
  })
  async provision(
    @Body() body: ProvisionRequestDto,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @RequestId() requestId: string,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ProvisionAcceptedDto> {
    const submitted = await this.jobs.submit(
      { ...body },
      { idempotencyKey: idempotencyKey || undefined, requestId },
    );
    return submitAnswer(submitted, reply);
  }

  @Get('status/:job_id')
  @ApiOperation({ summary: 'Status and progress of a job', operationId: 'getStatus' })
  @ApiOkResponse({ type: JobStatusDto })
  @ApiNotFoundResponse({ type: ErrorBodyDto })
  status(@Param('job_id', uuid) jobId: string): JobStatusDto {
    return JobStatusDto.from(this.jobs.get(jobId), this.jobs.queuePosition(jobId));
  }

  @Delete('cancel/:job_id')
  @ApiOperation({
    summary: 'Cancel a pending or running job; answers once its rollback is done',
    operationId: 'cancel',
  })
  @ApiOkResponse({ type: JobStatusDto })
  @ApiNotFoundResponse({ type: ErrorBodyDto })
  @ApiConflictResponse({ type: ErrorBodyDto, description: 'The job has already finished' })
  async cancel(@Param('job_id', uuid) jobId: string): Promise<JobStatusDto> {
    return JobStatusDto.from(await this.jobs.cancel(jobId));
  }

  @Get('jobs')
  @ApiOperation({ summary: 'List jobs, newest first', operationId: 'listJobs' })
  @ApiOkResponse({ type: JobListDto })
  list(@Query() query: JobListQueryDto): JobListDto {
    const { jobs, total } = this.jobs.list({
      status: query.status,
      kind: query.kind,
      volumeName: query.volume,
      limit: query.limit,
      offset: query.offset,
    });
    return {
      jobs: jobs.map((job) => JobStatusDto.from(job, this.jobs.queuePosition(job.id))),
      total,
      limit: query.limit,
      offset: query.offset,
    };
  }

  @Get('jobs/:job_id')
  @ApiOperation({ summary: 'One job (same body as /status)', operationId: 'getJob' })
  @ApiOkResponse({ type: JobStatusDto })
  @ApiNotFoundResponse({ type: ErrorBodyDto })
  job(@Param('job_id', uuid) jobId: string): JobStatusDto {
    return this.status(jobId);
  }
}
