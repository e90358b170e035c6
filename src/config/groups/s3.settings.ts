import { IsBoolean, IsOptional, IsString, MaxLength } from 'class-validator';
import { Env } from '../env.decorator';

/** The S3/MinIO endpoint and how to reach it: the S3 source and its health check take these. */
export class S3Settings {
  @Env('MINIO_ENDPOINT', {
    allowed: 'host[:port] or URL',
    doc: 'S3/MinIO endpoint: host[:port] or http(s)://host[:port]. Enables s3://bucket/key URLs and signs http(s)://<this host>/bucket/key URLs.',
  })
  @IsOptional()
  @IsString()
  @MaxLength(2048)
  endpoint?: string;

  @Env('MINIO_ACCESS_KEY', {
    aliases: ['MINIO_ACCESS_KEY_ID'],
    allowed: 'a string',
    doc: 'S3 access key.',
  })
  @IsOptional()
  @IsString()
  accessKey?: string;

  @Env('MINIO_SECRET_KEY', {
    aliases: ['MINIO_SECRET_ACCESS_KEY'],
    allowed: 'a string',
    doc: 'S3 secret key. Never logged.',
  })
  @IsOptional()
  @IsString()
  secretKey?: string;

  @Env('MINIO_REGION', { allowed: 'a string', doc: 'S3 region.' })
  @IsString()
  region = 'us-east-1';

  @Env('MINIO_USE_SSL', {
    allowed: 'true, false',
    doc: 'Talk to MINIO_ENDPOINT over TLS when it has no scheme.',
  })
  @IsBoolean()
  useSsl = true;

  @Env('MINIO_CA_FILE', {
    allowed: 'a file path',
    doc: 'PEM file of the CA that signed the S3 endpoint certificate (for a private CA).',
  })
  @IsOptional()
  @IsString()
  caFile?: string;

  @Env('MINIO_INSECURE_SKIP_VERIFY', {
    allowed: 'true, false',
    doc: 'Do not verify the S3 endpoint certificate. For labs only; logged as a warning at every start.',
  })
  @IsBoolean()
  insecureSkipVerify = false;
}
