import { Command, InvalidArgumentError, Option } from 'commander';
import { packageVersion } from '../common/package-version';
import { IMAGE_TYPES } from '../convert/image-format';
import { JOB_STATUSES } from '../jobs/job.model';
import { ApiClient, type ConnectionOptions } from './api-client';
import * as commands from './commands';
import { EXIT_CODES_HELP, type ExitCode } from './exit-codes';

/** The global flags: how to reach the daemon (as the API client takes it), plus output options. */
type GlobalOptions = Omit<ConnectionOptions, 'timeoutSeconds' | 'userAgent'> & {
  timeout: number;
  json?: boolean;
};

const ENVIRONMENT_HELP = `Environment:
  LVP_URL, LVP_TOKEN, LVP_CERT, LVP_KEY, LVP_CACERT, LVP_TIMEOUT   defaults for the options of the same name
  (prefer LVP_TOKEN over --token: command lines are visible to every user of the host)`;

const OUTPUT_HELP = `Output: on a terminal, progress bars (stderr) and readable text; with --json or when stdout
is not a terminal, JSON: one line per job event ({"event": ..., <job status>}), the last one
being the job's final status as GET /api/v1/status/<id> returns it.`;

const EXAMPLES = `Examples:
  lvp provision https://images.example.com/debian-12.qcow2 vm-web-1 --size 20 --wait
  lvp provision s3://images/noble.qcow2 vm-db-1 --size 50 --checksum sha256:9f86... --wait --json
  lvp watch 13fd6af1-d17b-4730-be09-624e9e1eadce
  lvp jobs --status failed --limit 10
  lvp --url https://hv7:8080 --cacert ca.pem --cert me.pem --key me.key cache ls`;

function positiveInteger(what: string, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
      throw new InvalidArgumentError(`${what} must be a whole number from 1 to ${max}`);
    }
    return Number(value);
  };
}

function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number, 0 or more');
  return Number(value);
}

function seconds(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || n <= 0)
    throw new InvalidArgumentError('must be a number of seconds > 0');
  return n;
}

/** `sha256:<64 hex>`; a bare digest gets the prefix. */
function checksum(value: string): string {
  const digest = /^(sha256:)?([0-9a-fA-F]{64})$/.exec(value);
  if (!digest) throw new InvalidArgumentError('must be sha256:<64 hex digits>');
  return `sha256:${digest[2].toLowerCase()}`;
}

function sha256(value: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new InvalidArgumentError('must be 64 hex digits');
  return value.toLowerCase();
}

function imageUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('must be a URL: http(s)://... or s3://bucket/key');
  }
  if (!['http:', 'https:', 's3:'].includes(url.protocol)) {
    throw new InvalidArgumentError(`uses ${url.protocol}; http(s)://... or s3://bucket/key`);
  }
  return value;
}

/**
 * The command line. Each action stores its exit code in `result.code`; commander's own errors
 * (unknown option, missing argument) are thrown by exitOverride and mapped to 2 by main.
 */
export function buildProgram(result: { code?: ExitCode }): Command {
  const program = new Command('lvp')
    .description(
      'Command-line client of libvirt-volume-provisioner: provision volumes from images, follow jobs with ' +
        'progress bars (or JSON lines), cancel them, list jobs and the image cache.',
    )
    .version(packageVersion(), '-V, --version')
    .exitOverride()
    .showHelpAfterError('(lvp --help shows the usage)')
    .addOption(
      new Option('--url <url>', 'address of the daemon').env('LVP_URL').default('http://127.0.0.1:8080'),
    )
    .addOption(new Option('--token <token>', 'API token (sent as Authorization: Bearer)').env('LVP_TOKEN'))
    .addOption(
      new Option('--cert <file>', 'client certificate, PEM (may hold the key too), for mTLS').env('LVP_CERT'),
    )
    .addOption(new Option('--key <file>', 'private key of --cert, PEM').env('LVP_KEY'))
    .addOption(
      new Option('--cacert <file>', "CA bundle to verify the daemon's certificate with").env('LVP_CACERT'),
    )
    .addOption(new Option('-k, --insecure', "do not verify the daemon's certificate"))
    .addOption(
      new Option('--timeout <seconds>', 'wait this long to connect and for an answer')
        .env('LVP_TIMEOUT')
        .default(30)
        .argParser(seconds),
    )
    .addOption(new Option('--json', 'JSON output, also on a terminal (always when stdout is not one)'))
    .addHelpText('after', `\n${OUTPUT_HELP}\n\n${EXIT_CODES_HELP}\n\n${ENVIRONMENT_HELP}\n\n${EXAMPLES}`);

  const context = (command: Command, retryForSeconds = 300): commands.CommandContext => {
    const o = command.optsWithGlobals<GlobalOptions>();
    return {
      client: new ApiClient({
        url: o.url,
        token: o.token,
        cert: o.cert,
        key: o.key,
        cacert: o.cacert,
        insecure: o.insecure,
        timeoutSeconds: o.timeout,
        userAgent: `lvp/${packageVersion()}`,
      }),
      json: Boolean(o.json) || !process.stdout.isTTY,
      retryForMs: retryForSeconds * 1000,
    };
  };
  const retryFor = () =>
    new Option('--retry-for <seconds>', 'keep reconnecting this long after losing the daemon')
      .default(300)
      .argParser(seconds);
  const submitOptions = (command: Command) =>
    command
      .addOption(new Option('--checksum <sha256>', 'expected digest: sha256:<64 hex>').argParser(checksum))
      .addOption(new Option('--correlation-id <id>', 'your tracking id, stored and echoed'))
      .addOption(new Option('--idempotency-key <key>', 'repeat-safe submit: same key and body, same job'))
      .addOption(new Option('--wait', 'follow the job to its end (exit code = outcome)'))
      .addOption(retryFor());

  submitOptions(
    program
      .command('provision')
      .description('fill a volume with an image (prints the job id, or follows it with --wait)')
      .argument('<image_url>', 'http(s)://... or s3://bucket/key', imageUrl)
      .argument('<volume_name>', 'volume to create or reuse (LVM name rules)')
      .addOption(
        new Option('--size <GB>', 'volume size in GiB')
          .argParser(positiveInteger('--size'))
          .makeOptionMandatory(),
      )
      .addOption(
        new Option('--type <format>', 'format of the image as published')
          .choices(IMAGE_TYPES)
          .default('qcow2'),
      ),
  ).action(async (url: string, volume: string, options, command: Command) => {
    const { retryFor: wait, ...rest } = options;
    result.code = await commands.provision(context(command, wait), url, volume, rest);
  });

  program
    .command('status')
    .description("a job's status (exit code: 0, or 1 failed, 3 cancelled)")
    .argument('<job>', 'job id')
    .action(async (job: string, _options, command: Command) => {
      result.code = await commands.status(context(command), job);
    });

  program
    .command('watch')
    .description('follow a job to its end over Server-Sent Events, reconnecting when the daemon restarts')
    .argument('<job>', 'job id')
    .addOption(retryFor())
    .action(async (job: string, options: { retryFor: number }, command: Command) => {
      result.code = await commands.watch(context(command, options.retryFor), job);
    });

  program
    .command('cancel')
    .description('cancel a pending or running job (answers once its clean-up is done)')
    .argument('<job>', 'job id')
    .action(async (job: string, _options, command: Command) => {
      result.code = await commands.cancel(context(command), job);
    });

  program
    .command('jobs')
    .description('list jobs, newest first')
    .addOption(new Option('--status <status>', 'only jobs in this status').choices(JOB_STATUSES))
    .addOption(
      new Option('--kind <kind>', 'only provision or prefetch jobs').choices(['provision', 'prefetch']),
    )
    .addOption(new Option('--volume <name>', 'only jobs for this volume'))
    .addOption(new Option('--limit <n>', 'at most n jobs (1-500)').argParser(positiveInteger('--limit', 500)))
    .addOption(new Option('--offset <n>', 'skip the first n').argParser(wholeNumber))
    .action(async (options, command: Command) => {
      result.code = await commands.jobs(context(command), options);
    });

  const cache = program.command('cache').description('the image cache: ls, rm, prefetch');
  cache
    .command('ls')
    .description('cached images, totals and hit/miss counters')
    .action(async (_options, command: Command) => {
      result.code = await commands.cacheList(context(command));
    });
  cache
    .command('rm')
    .description('delete a cached image (refused while a job reads it)')
    .argument('<sha256>', 'the entry, 64 hex digits', sha256)
    .action(async (digest: string, _options, command: Command) => {
      result.code = await commands.cacheRemove(context(command), digest);
    });
  submitOptions(
    cache
      .command('prefetch')
      .description('download an image into the cache (a job that writes no volume)')
      .argument('<image_url>', 'http(s)://... or s3://bucket/key', imageUrl),
  ).action(async (url: string, options, command: Command) => {
    const { retryFor: wait, ...rest } = options;
    result.code = await commands.prefetch(context(command, wait), url, rest);
  });

  program
    .command('health')
    .description('is the daemon alive (exit 0), or with --ready, ready to work')
    .addOption(new Option('--ready', 'readiness (/readyz) instead of liveness (/health)'))
    .action(async (options: { ready?: boolean }, command: Command) => {
      result.code = await commands.health(context(command), Boolean(options.ready));
    });

  return program;
}
