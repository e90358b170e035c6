import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Max, Min } from 'class-validator';
import { JOB_STATUSES, type JobStatus } from '../job.model';
import { JobStatusDto } from './job-status.dto';

export class JobListQueryDto {
  @ApiPropertyOptional({ enum: JOB_STATUSES })
  @IsOptional()
  @IsIn(JOB_STATUSES, { message: `status must be one of: ${JOB_STATUSES.join(', ')}` })
  status?: JobStatus;

  @ApiPropertyOptional({ enum: ['provision', 'prefetch'] })
  @IsOptional()
  @IsIn(['provision', 'prefetch'], { message: 'kind must be one of: provision, prefetch' })
  kind?: 'provision' | 'prefetch';

  @ApiPropertyOptional({ description: 'Only jobs for this volume' })
  @IsOptional()
  @IsString()
  volume?: string;

  @ApiPropertyOptional({ default: 50, minimum: 1, maximum: 500 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(500)
  limit: number = 50;

  @ApiPropertyOptional({ default: 0, minimum: 0 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(0)
  offset: number = 0;
}

export class JobListDto {
  @ApiProperty({ type: [JobStatusDto], description: 'Newest first' })
  jobs!: JobStatusDto[];

  @ApiProperty({ description: 'Jobs matching the filter' })
  total!: number;

  @ApiProperty()
  limit!: number;

  @ApiProperty()
  offset!: number;
}
