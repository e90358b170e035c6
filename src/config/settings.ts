import {
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  MaxLength,
  Min,
  MinLength,
} from 'class-validator';

/**
 * Every setting of the daemon, with its default. Loaded once at boot from the environment (and
 * an optional env file) by loadSettings(); injected everywhere else. The `env` metadata below is
 * the single source for the variable names, their aliases and docs/configuration.md.
 */
export const VOLUME_BACKENDS = ['file', 'lvm', 'lvm-thin'] as const;
export type VolumeBackendKind = (typeof VOLUME_BACKENDS)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_FORMATS = ['json', 'text'] as const;

/** LVM's rules for a VG name: letters, digits and + _ . -, not starting with '-', not '.' or '..'. */
export const LVM_NAME_PATTERN = /^(?!-)(?!\.{1,2}$)[A-Za-z0-9+_.-]{1,127}$/;

export class Settings {
  @IsString()
  @MinLength(1)
  host = '127.0.0.1';

  @IsInt()
  @Min(0)
  @Max(65535)
  port = 8080;

  @IsString()
  @MinLength(1)
  dbPath = './var/provisioner.db';

  @IsIn(VOLUME_BACKENDS)
  volumeBackend: VolumeBackendKind = 'file';

  @IsString()
  @MinLength(1)
  volumeDir = './var/volumes';

  @IsString()
  @Matches(LVM_NAME_PATTERN, { message: 'must be a valid LVM volume group name (letters, digits, + _ . -)' })
  lvmVolumeGroup = 'data';

  /** Thin pool (in LVM_VOLUME_GROUP) of the lvm-thin backend. */
  @IsString()
  @Matches(LVM_NAME_PATTERN, { message: 'must be a valid LVM name (letters, digits, + _ . -)' })
  lvmThinPool = 'pool';

  /** libvirt storage pool to refresh after a volume is written (virsh pool-refresh); empty = none. */
  @IsOptional()
  @IsString()
  @Matches(/^[A-Za-z0-9_.:+-]{1,128}$/, { message: 'must be a libvirt pool name' })
  libvirtPool?: string;

  @IsString()
  @MinLength(1)
  cacheDir = './var/cache';

  @IsInt()
  @Min(1)
  @Max(64)
  maxConcurrentJobs = 2;

  /** Seconds a job may run (counted from when it starts running, not from submission). */
  @IsInt()
  @Min(1)
  jobTimeout = 3600;

  /** Seconds running jobs may take to finish after SIGTERM before they are cancelled and rolled back. */
  @IsInt()
  @Min(0)
  shutdownGrace = 30;

  /** Largest volume_size_gb a request may ask for (GiB). Guards against typos like 50000000. */
  @IsInt()
  @Min(1)
  maxVolumeSizeGb = 65536;

  @IsIn(LOG_LEVELS)
  logLevel: (typeof LOG_LEVELS)[number] = 'info';

  @IsIn(LOG_FORMATS)
  logFormat: (typeof LOG_FORMATS)[number] = 'json';

  /** Seconds between SSE heartbeat comments. */
  @IsInt()
  @Min(1)
  @Max(300)
  sseHeartbeatSeconds = 15;

  /** Seconds qemu-img may take to describe an image before the job fails. */
  @IsInt()
  @Min(1)
  inspectTimeout = 60;

  /** CPU seconds qemu-img may use on an untrusted image (prlimit --cpu). */
  @IsInt()
  @Min(1)
  inspectCpuSeconds = 30;

  /** Address space qemu-img may use on an untrusted image (prlimit --as). */
  @IsInt()
  @Min(64 * 1024 * 1024)
  inspectMemoryBytes = 1024 * 1024 * 1024;

  @IsOptional()
  @IsString()
  @MaxLength(2048)
  minioEndpoint?: string;

  @IsOptional()
  @IsString()
  minioAccessKey?: string;

  @IsOptional()
  @IsString()
  minioSecretKey?: string;

  @IsString()
  minioRegion = 'us-east-1';

  @IsBoolean()
  minioUseSsl = true;

  /** PEM file with the CA that signed the S3 endpoint's certificate (private PKI). */
  @IsOptional()
  @IsString()
  minioCaFile?: string;

  /** Skip TLS verification of the S3 endpoint: for lab use only, logged as a warning at start. */
  @IsBoolean()
  minioInsecureSkipVerify = false;

  /** Tries per transfer (1 = no retry). Only transient failures are retried. */
  @IsInt()
  @Min(1)
  @Max(20)
  minioRetryAttempts = 4;

  /** Delays between tries in ms: one number (doubled each time) or the original's comma list. */
  @Matches(/^\d+(,\d+)*$/, { message: 'must be milliseconds: one number or a comma-separated list' })
  minioRetryBackoffMs = '1000,2000,4000';

  /** Seconds a download may receive nothing (no answer, or no bytes) before the try is aborted. */
  @IsInt()
  @Min(1)
  @Max(3600)
  downloadStallSeconds = 60;

  /** Fail jobs that have no expected sha256 (neither `checksum` in the request nor a .sha256 sidecar). */
  @IsBoolean()
  requireChecksum = false;

  /** Total bytes the image cache may hold; least recently used images are evicted beyond it. */
  @IsInt()
  @Min(0)
  cacheMaxBytes = 50 * 1024 ** 3;

  /** Images the cache may hold. */
  @IsInt()
  @Min(0)
  cacheMaxEntries = 50;

  /** PEM certificate (chain) for HTTPS; with TLS_KEY_FILE turns TLS on. */
  @IsOptional()
  @IsString()
  tlsCertFile?: string;

  @IsOptional()
  @IsString()
  tlsKeyFile?: string;

  /** PEM CA bundle whose client certificates authenticate a request (mTLS). */
  @IsOptional()
  @IsString()
  clientCaCert?: string;

  /** Comma list of client certificate CNs or SAN DNS/URI names allowed; empty = any from the CA. */
  @IsOptional()
  @IsString()
  allowedClientSubjects?: string;

  /** File of `name:token` or `name:sha256:<hex>` lines; mode must be 0600 or stricter. */
  @IsOptional()
  @IsString()
  apiTokensFile?: string;

  /** Escape hatch: no authentication at all, on any address. Logged loudly at every start. */
  @IsBoolean()
  authDisabled = false;

  @IsBoolean()
  metricsRequireAuth = false;

  @IsBoolean()
  docsEnabled = true;

  /** POST requests per minute per principal (token name, certificate subject or address). */
  @IsInt()
  @Min(1)
  rateLimitPerMinute = 120;

  /** Comma list of image hosts allowed for http(s) URLs (`*.example.com` matches subdomains); empty = any. */
  @IsOptional()
  @IsString()
  imageHostAllowlist?: string;

  /** Comma list of CIDRs image URLs may reach although they are loopback or link-local. */
  @IsOptional()
  @IsString()
  imageAllowAddresses?: string;

  /** /readyz: free bytes the cache and volume filesystems must keep; below it the daemon is not ready. */
  @IsInt()
  @Min(0)
  readyMinFreeBytes = 1024 ** 3;

  /** /readyz: seconds between background reachability checks of MINIO_ENDPOINT. */
  @IsInt()
  @Min(1)
  @Max(300)
  readyS3CheckSeconds = 10;
}

/** How one setting is read from the environment; the first name found wins. */
export interface EnvBinding {
  key: keyof Settings;
  names: string[];
  description: string;
  allowed?: string;
}

export const ENV_BINDINGS: EnvBinding[] = [
  {
    key: 'host',
    names: ['HOST'],
    description: 'Address to listen on.',
    allowed: 'an IP address or host name',
  },
  {
    key: 'port',
    names: ['PORT'],
    description: 'TCP port to listen on (0 picks a free port).',
    allowed: '0-65535',
  },
  {
    key: 'dbPath',
    names: ['DB_PATH', 'DATABASE_PATH'],
    description: 'SQLite file holding jobs (and the cache index). Its directory is created if missing.',
    allowed: 'a file path',
  },
  {
    key: 'volumeBackend',
    names: ['VOLUME_BACKEND'],
    description:
      'Where volumes live: `file` = VOLUME_DIR/<name>.raw (a libvirt dir pool); `lvm` = thick LVs in LVM_VOLUME_GROUP; `lvm-thin` = thin LVs in LVM_THIN_POOL.',
    allowed: VOLUME_BACKENDS.join(', '),
  },
  {
    key: 'volumeDir',
    names: ['VOLUME_DIR'],
    description: 'Directory of the `file` backend.',
    allowed: 'a directory path',
  },
  {
    key: 'lvmVolumeGroup',
    names: ['LVM_VOLUME_GROUP'],
    description: 'Volume group of the `lvm` and `lvm-thin` backends.',
    allowed: 'an LVM VG name',
  },
  {
    key: 'lvmThinPool',
    names: ['LVM_THIN_POOL'],
    description:
      'Thin pool of the `lvm-thin` backend (in LVM_VOLUME_GROUP). Volumes larger than its free data space are refused.',
    allowed: 'an LVM LV name',
  },
  {
    key: 'libvirtPool',
    names: ['LIBVIRT_POOL'],
    description:
      'libvirt storage pool to refresh (`virsh pool-refresh`) after a volume is created or written, so libvirt sees it at once. A failed refresh is logged, not fatal.',
    allowed: 'a libvirt pool name',
  },
  {
    key: 'cacheDir',
    names: ['CACHE_DIR'],
    description: 'Directory for downloaded images (tmp/ holds partial downloads).',
    allowed: 'a directory path',
  },
  {
    key: 'maxConcurrentJobs',
    names: ['MAX_CONCURRENT_JOBS'],
    description: 'Jobs running at once; the rest wait in FIFO order.',
    allowed: '1-64',
  },
  {
    key: 'jobTimeout',
    names: ['JOB_TIMEOUT'],
    description: 'Seconds a job may run, counted from when it starts running; then it fails as timed out.',
    allowed: 'a positive integer',
  },
  {
    key: 'shutdownGrace',
    names: ['SHUTDOWN_GRACE'],
    description:
      'Seconds running jobs may take to finish after SIGTERM; then they are cancelled and rolled back. Pending jobs stay pending and run after the next start.',
    allowed: 'a non-negative integer',
  },
  {
    key: 'maxVolumeSizeGb',
    names: ['MAX_VOLUME_SIZE_GB'],
    description: 'Largest volume_size_gb a request may ask for (GiB).',
    allowed: 'a positive integer',
  },
  { key: 'logLevel', names: ['LOG_LEVEL'], description: 'Log level.', allowed: LOG_LEVELS.join(', ') },
  {
    key: 'logFormat',
    names: ['LOG_FORMAT'],
    description: '`json` (one object per line, for journald) or `text` (pretty, for a terminal).',
    allowed: LOG_FORMATS.join(', '),
  },
  {
    key: 'sseHeartbeatSeconds',
    names: ['SSE_HEARTBEAT_SECONDS'],
    description: 'Seconds between heartbeat comments on an event stream.',
    allowed: '1-300',
  },
  {
    key: 'inspectTimeout',
    names: ['INSPECT_TIMEOUT'],
    description: 'Seconds `qemu-img info` may take on an image before the job fails.',
    allowed: 'a positive integer',
  },
  {
    key: 'inspectCpuSeconds',
    names: ['INSPECT_CPU_SECONDS'],
    description:
      'CPU seconds `qemu-img info`/`check` may use on an untrusted image before the kernel stops it.',
    allowed: 'a positive integer',
  },
  {
    key: 'inspectMemoryBytes',
    names: ['INSPECT_MEMORY_BYTES'],
    description:
      'Address space `qemu-img info`/`check` may use on an untrusted image (K/M/G suffixes allowed).',
    allowed: 'bytes, at least 64M',
  },
  {
    key: 'minioEndpoint',
    names: ['MINIO_ENDPOINT'],
    description:
      'S3/MinIO endpoint: host[:port] or http(s)://host[:port]. Enables s3://bucket/key URLs and signs http(s)://<this host>/bucket/key URLs.',
    allowed: 'host[:port] or URL',
  },
  {
    key: 'minioAccessKey',
    names: ['MINIO_ACCESS_KEY', 'MINIO_ACCESS_KEY_ID'],
    description: 'S3 access key.',
    allowed: 'a string',
  },
  {
    key: 'minioSecretKey',
    names: ['MINIO_SECRET_KEY', 'MINIO_SECRET_ACCESS_KEY'],
    description: 'S3 secret key. Never logged.',
    allowed: 'a string',
  },
  { key: 'minioRegion', names: ['MINIO_REGION'], description: 'S3 region.', allowed: 'a string' },
  {
    key: 'minioUseSsl',
    names: ['MINIO_USE_SSL'],
    description: 'Talk to MINIO_ENDPOINT over TLS when it has no scheme.',
    allowed: 'true, false',
  },
  {
    key: 'minioCaFile',
    names: ['MINIO_CA_FILE'],
    description: 'PEM file of the CA that signed the S3 endpoint certificate (for a private CA).',
    allowed: 'a file path',
  },
  {
    key: 'minioInsecureSkipVerify',
    names: ['MINIO_INSECURE_SKIP_VERIFY'],
    description:
      'Do not verify the S3 endpoint certificate. For labs only; logged as a warning at every start.',
    allowed: 'true, false',
  },
  {
    key: 'minioRetryAttempts',
    names: ['MINIO_RETRY_ATTEMPTS'],
    description:
      'Tries per transfer (1 = no retry). Only transient failures (network errors, 5xx, throttling) are retried; a retry resumes where the last try stopped.',
    allowed: '1-20',
  },
  {
    key: 'minioRetryBackoffMs',
    names: ['MINIO_RETRY_BACKOFF_MS'],
    description:
      'Milliseconds to wait before each retry: a comma list (one per retry, the last repeats) or one number that doubles each time. Jitter of up to 20 % is added.',
    allowed: 'a number or a comma-separated list of numbers',
  },
  {
    key: 'downloadStallSeconds',
    names: ['DOWNLOAD_STALL_SECONDS'],
    description:
      'Seconds an image source (S3 or HTTP) may send nothing (no response headers, or no bytes mid-transfer) before the try is aborted. The try is then retried like a broken connection (MINIO_RETRY_ATTEMPTS, resuming where it stopped); when the tries are used up the job fails `source_failed` naming the stall, and its slot goes to the next job.',
    allowed: '1-3600',
  },
  {
    key: 'requireChecksum',
    names: ['REQUIRE_CHECKSUM'],
    description:
      'Refuse images without an expected sha256 (request `checksum` or a `.sha256` sidecar). When off, the sha256 is still computed and recorded, and the job says the image was unverified.',
    allowed: 'true, false',
  },
  {
    key: 'cacheMaxBytes',
    names: ['CACHE_MAX_BYTES'],
    description:
      'Bytes the image cache may hold (suffixes K, M, G, T = powers of 1024): the images as downloaded plus the expanded (uncompressed) copies of compressed qcow2 images. Least recently used images are evicted beyond it; an image larger than this is used once and not kept.',
    allowed: 'a byte count, e.g. 53687091200 or 50G',
  },
  {
    key: 'cacheMaxEntries',
    names: ['CACHE_MAX_ENTRIES'],
    description: 'Images the cache may hold; least recently used ones are evicted beyond it.',
    allowed: 'a non-negative integer',
  },
  {
    key: 'tlsCertFile',
    names: ['TLS_CERT_FILE', 'SERVER_CERT'],
    description:
      'PEM certificate (chain) of the HTTPS listener. With TLS_KEY_FILE it turns HTTPS on (TLS 1.2+). Re-read on SIGHUP.',
    allowed: 'a file path',
  },
  {
    key: 'tlsKeyFile',
    names: ['TLS_KEY_FILE', 'SERVER_KEY'],
    description: 'PEM private key of the HTTPS listener. Re-read on SIGHUP.',
    allowed: 'a file path',
  },
  {
    key: 'clientCaCert',
    names: ['CLIENT_CA_CERT'],
    description:
      'PEM CA bundle: a client certificate that chains to it authenticates a request (mTLS). Needs HTTPS. There is no default CA. Re-read on SIGHUP.',
    allowed: 'a file path',
  },
  {
    key: 'allowedClientSubjects',
    names: ['ALLOWED_CLIENT_SUBJECTS'],
    description:
      'Comma list of client certificate CNs or SAN DNS/URI names allowed; others get 403. Empty: any certificate from CLIENT_CA_CERT.',
    allowed: 'comma-separated names',
  },
  {
    key: 'apiTokensFile',
    names: ['API_TOKENS_FILE'],
    description:
      'File of API tokens, one `name:token` or `name:sha256:<hex of token>` per line (# comments). Must not be readable by group or others. Re-read on SIGHUP.',
    allowed: 'a file path (mode 0600 or stricter)',
  },
  {
    key: 'authDisabled',
    names: ['AUTH_DISABLED'],
    description:
      'Run without any authentication even on a non-loopback HOST. For isolated labs only; warned about at every start.',
    allowed: 'true, false',
  },
  {
    key: 'metricsRequireAuth',
    names: ['METRICS_REQUIRE_AUTH'],
    description:
      '/metrics needs the same credentials as the API (it is open by default, like the health probes).',
    allowed: 'true, false',
  },
  {
    key: 'docsEnabled',
    names: ['DOCS_ENABLED'],
    description:
      'Serve Swagger UI at /docs and the OpenAPI document at /docs/json (behind the same auth as the API).',
    allowed: 'true, false',
  },
  {
    key: 'rateLimitPerMinute',
    names: ['RATE_LIMIT_PER_MINUTE'],
    description:
      'POST requests per minute per principal (token name, certificate subject, or client address); more get 429.',
    allowed: 'a positive integer',
  },
  {
    key: 'imageHostAllowlist',
    names: ['IMAGE_HOST_ALLOWLIST'],
    description:
      'Comma list of hosts http(s) image URLs may name (`*.example.com` matches subdomains), checked on every redirect too. Empty: any host.',
    allowed: 'comma-separated host names',
  },
  {
    key: 'imageAllowAddresses',
    names: ['IMAGE_ALLOW_ADDRESSES'],
    description:
      'Comma list of CIDRs that http(s) image URLs may reach although they are loopback (127.0.0.0/8, ::1) or link-local (169.254.0.0/16, fe80::/10, the metadata address). Checked after DNS resolution and on every redirect.',
    allowed: 'comma-separated CIDRs, e.g. 127.0.0.1/32',
  },
  {
    key: 'readyMinFreeBytes',
    names: ['READY_MIN_FREE_BYTES'],
    description:
      'Free bytes CACHE_DIR and VOLUME_DIR (file backend) must each have; with less, /readyz answers 503 naming the directory (K/M/G/T suffixes allowed).',
    allowed: 'a byte count, e.g. 1073741824 or 1G',
  },
  {
    key: 'readyS3CheckSeconds',
    names: ['READY_S3_CHECK_SECONDS'],
    description:
      'Seconds between background checks that MINIO_ENDPOINT answers (2 s timeout each). /readyz reports the latest result, so a slow S3 never stalls a probe.',
    allowed: '1-300',
  },
];
