import { IsBoolean, IsInt, IsString, Max, Min, MinLength } from 'class-validator';
import { Env, envBindings, Group } from './env.decorator';
import { AuthSettings } from './groups/auth.settings';
import { BaseSettings } from './groups/base.settings';
import { CacheSettings } from './groups/cache.settings';
import { ConvertSettings } from './groups/convert.settings';
import { ImageSettings } from './groups/image.settings';
import { InspectSettings } from './groups/inspect.settings';
import { JobSettings } from './groups/job.settings';
import { LogSettings } from './groups/log.settings';
import { ReadySettings } from './groups/ready.settings';
import { RetrySettings } from './groups/retry.settings';
import { S3Settings } from './groups/s3.settings';
import { TlsSettings } from './groups/tls.settings';
import { VolumeSettings } from './groups/volume.settings';

export { CLONE_MODES, type CloneMode } from './groups/base.settings';
export { LOG_FORMATS, LOG_LEVELS } from './groups/log.settings';
export { LVM_NAME_PATTERN, VOLUME_BACKENDS, type VolumeBackendKind } from './groups/volume.settings';
export type { EnvBinding } from './env.decorator';

/**
 * Every setting of the daemon. Each is declared once, here or in its group under groups/: field,
 * default, validators, environment names and documentation together. Loaded once at boot from the
 * environment (and an optional env file) by loadSettings(); injected everywhere else. The order
 * of declaration is the order of docs/configuration.md.
 */
export class Settings {
  @Env('HOST', { allowed: 'an IP address or host name', doc: 'Address to listen on.' })
  @IsString()
  @MinLength(1)
  host = '127.0.0.1';

  @Env('PORT', { allowed: '0-65535', doc: 'TCP port to listen on (0 picks a free port).' })
  @IsInt()
  @Min(0)
  @Max(65535)
  port = 8080;

  @Env('DB_PATH', {
    aliases: ['DATABASE_PATH'],
    allowed: 'a file path',
    doc: 'SQLite file holding jobs (and the cache index). Its directory is created if missing.',
  })
  @IsString()
  @MinLength(1)
  dbPath = './var/provisioner.db';

  @Group(() => LogSettings)
  log = new LogSettings();

  @Group(() => VolumeSettings)
  volumes = new VolumeSettings();

  @Group(() => JobSettings)
  jobs = new JobSettings();

  @Group(() => CacheSettings)
  cache = new CacheSettings();

  @Group(() => BaseSettings)
  bases = new BaseSettings();

  @Group(() => ImageSettings)
  images = new ImageSettings();

  @Group(() => InspectSettings)
  inspect = new InspectSettings();

  @Group(() => ConvertSettings)
  convert = new ConvertSettings();

  @Group(() => S3Settings)
  s3 = new S3Settings();

  @Group(() => RetrySettings)
  retry = new RetrySettings();

  @Group(() => TlsSettings)
  tls = new TlsSettings();

  @Group(() => AuthSettings)
  auth = new AuthSettings();

  @Env('RATE_LIMIT_PER_MINUTE', {
    allowed: 'a positive integer',
    doc: 'POST requests per minute per principal (token name, certificate subject, or client address); more get 429.',
  })
  @IsInt()
  @Min(1)
  rateLimitPerMinute = 120;

  @Env('DOCS_ENABLED', {
    allowed: 'true, false',
    doc: 'Serve Swagger UI at /docs and the OpenAPI document at /docs/json (behind the same auth as the API).',
  })
  @IsBoolean()
  docsEnabled = true;

  @Env('SSE_HEARTBEAT_SECONDS', {
    allowed: '1-300',
    doc: 'Seconds between heartbeat comments on an event stream.',
  })
  @IsInt()
  @Min(1)
  @Max(300)
  sseHeartbeatSeconds = 15;

  @Group(() => ReadySettings)
  ready = new ReadySettings();
}

/** Every setting's variables, docs and path in Settings, in declaration order. */
export const ENV_BINDINGS = envBindings(Settings);

export {
  AuthSettings,
  BaseSettings,
  CacheSettings,
  ConvertSettings,
  ImageSettings,
  InspectSettings,
  JobSettings,
  LogSettings,
  ReadySettings,
  RetrySettings,
  S3Settings,
  TlsSettings,
  VolumeSettings,
};
