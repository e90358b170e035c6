import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Daemon } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { LVP_MAIN, Lvp, runLvp, shellQuote, Tmux } from '../harness/lvp';
import { TestCa } from '../harness/pki';
import { waitFor } from '../harness/wait';
import { makeWorkdir } from '../harness/workdir';
import { freePort } from '../harness/ports';
import { smallQcow2, smallRaw, uniqueQcow2 } from '../fixtures/images';

const TOKEN = 'tok-cli-0123456789abcdef';
const MIB = 1024 * 1024;

describe('lvp, the command-line client, against a real daemon', () => {
  const work = makeWorkdir('cli');
  const www = join(work.dir, 'www');
  const tokens = join(work.dir, 'tokens');
  const tmux = new Tmux(join(work.dir, 'tmux.sock'));
  const daemonEnv = () => ({ API_TOKENS_FILE: tokens, MAX_CONCURRENT_JOBS: '4' });
  let server: ImageServer;
  let daemon: Daemon;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const env = (extra: Record<string, string> = {}) => ({ LVP_URL: daemon.url, LVP_TOKEN: TOKEN, ...extra });
  const statusOf = async (jobId: string) =>
    (await daemon.request('GET', `/api/v1/status/${jobId}`, undefined, auth)).body;
  const jobCount = async () => (await daemon.request('GET', '/api/v1/jobs', undefined, auth)).body.total;
  /** Each slow job downloads its own copy: the cache would serve an image it has seen. */
  const image = (name: string) => {
    copyFileSync(smallQcow2(), join(www, `${name}.qcow2`));
    return `${server.url}/${name}.qcow2`;
  };

  before(async () => {
    mkdirSync(www);
    copyFileSync(smallQcow2(), join(www, 'small.qcow2'));
    copyFileSync(smallRaw(), join(www, 'small.raw'));
    writeFileSync(tokens, `cli:${TOKEN}\n`, { mode: 0o600 });
    server = await new ImageServer(www).start();
    daemon = await new Daemon({ dir: work.dir, env: daemonEnv() }).start();
  });

  after(async () => {
    tmux.kill();
    await daemon?.stop();
    await server?.stop();
    work.cleanup();
  });

  it('provision --wait --json completes with exit 0; its last line is the job as GET /api/v1/status/<id> reports it', async () => {
    const run = await runLvp(
      [
        'provision',
        `${server.url}/small.qcow2`,
        'vm-cli-ok',
        '--size',
        '1',
        '--type',
        'qcow2',
        '--correlation-id',
        'deploy-1',
        '--wait',
        '--json',
      ],
      env(),
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.lines.length, run.stdout.trimEnd().split('\n').length, 'every stdout line is JSON');
    assert.ok(run.lines.every((line) => typeof line.event === 'string'));
    assert.equal(run.lines[0].event, 'accepted');
    assert.ok(run.lines.some((line) => line.event === 'state'));
    const { event, ...final } = run.lines.at(-1);
    assert.equal(event, 'end');
    assert.equal(final.status, 'completed');
    assert.equal(final.correlation_id, 'deploy-1');
    assert.deepEqual(final, await statusOf(final.job_id));
  });

  it('exits 1 for a failed job and prints the daemon’s error text (a raw image sent as qcow2)', async () => {
    const run = await runLvp(
      ['provision', `${server.url}/small.raw`, 'vm-cli-mismatch', '--size', '1', '--type', 'qcow2', '--wait'],
      env(),
    );
    assert.equal(run.code, 1, run.stderr);
    const final = run.lines.at(-1);
    assert.equal(final.status, 'failed');
    assert.match(final.error, /is raw, but the request says image_type qcow2/);
    assert.ok(run.stderr.includes(final.error), run.stderr);
    assert.deepEqual({ ...final, event: undefined }, { ...(await statusOf(final.job_id)), event: undefined });
  });

  it('exits 3 when the job it waits for is cancelled through the API', async () => {
    server.bytesPerSecond = MIB;
    try {
      const run = new Lvp(
        ['provision', image('cancel-me'), 'vm-cli-cancel', '--size', '1', '--wait', '--json'],
        env(),
      );
      const downloading = await waitFor('lvp to report the download', () =>
        run.lines().find((line) => line.progress?.stage === 'downloading'),
      );
      const cancelled = await daemon.request(
        'DELETE',
        `/api/v1/cancel/${downloading.job_id}`,
        undefined,
        auth,
      );
      assert.equal(cancelled.status, 200);
      const result = await run.done;
      assert.equal(result.code, 3, result.stderr);
      assert.equal(result.lines.at(-1).status, 'cancelled');
      assert.match(result.stderr, /cancelled by request/);
    } finally {
      server.bytesPerSecond = 0;
    }
  });

  it('exits 4 when the token is wrong or missing, and when nothing listens', async () => {
    const before = await jobCount();
    const wrong = await runLvp(
      ['provision', `${server.url}/small.qcow2`, 'vm-cli-denied', '--size', '1', '--wait'],
      env({ LVP_TOKEN: 'tok-wrong-0000000000000000' }),
    );
    assert.equal(wrong.code, 4);
    assert.match(wrong.stderr, /refused the credentials.*\(401\)/);
    assert.equal((await runLvp(['jobs'], { LVP_URL: daemon.url })).code, 4, 'no token at all');
    assert.equal(await jobCount(), before);
    const nobody = await runLvp(['status', '00000000-0000-4000-8000-000000000000'], {
      LVP_URL: `http://127.0.0.1:${await freePort()}`,
    });
    assert.equal(nobody.code, 4);
    assert.match(nobody.stderr, /connection refused/);
  });

  it('exits 2 for usage errors, before anything is sent; and for a request the daemon finds invalid', async () => {
    const before = await jobCount();
    const url = `${server.url}/small.qcow2`;
    for (const args of [
      ['provision', url],
      ['provision', url, 'vm-x'],
      ['provision', url, 'vm-x', '--size', '0'],
      ['provision', url, 'vm-x', '--size', 'ten'],
      ['provision', url, 'vm-x', '--size', '1', '--type', 'iso'],
      ['provision', url, 'vm-x', '--size', '1', '--checksum', 'md5:abc'],
      ['provision', 'ftp://host/x.img', 'vm-x', '--size', '1'],
      ['jobs', '--status', 'sleeping'],
      ['jobs', '--limit', '501'],
      ['cache', 'rm', 'not-a-digest'],
      ['frobnicate'],
      [],
    ]) {
      const run = await runLvp(args, env());
      assert.equal(run.code, 2, `lvp ${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, /error|usage/i, `lvp ${args.join(' ')}`);
    }
    assert.equal(await jobCount(), before, 'a usage error must not submit anything');
    const invalid = await runLvp(['provision', url, 'snapshot-vm', '--size', '1'], env());
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /volume_name.*validation_failed/);
  });

  it('lists jobs, shows a status and health, and documents its exit codes in --help', async () => {
    const jobs = await runLvp(['jobs', '--status', 'completed', '--limit', '5'], env());
    assert.equal(jobs.code, 0, jobs.stderr);
    assert.ok(jobs.lines[0].jobs.some((j: any) => j.volume_name === 'vm-cli-ok'));
    const failed = await runLvp(['jobs', '--status', 'failed', '--limit', '1'], env());
    const failedId = failed.lines[0].jobs[0].job_id;
    assert.equal((await runLvp(['status', failedId], env())).code, 1, 'status exits with the job outcome');
    const health = await runLvp(['health'], { LVP_URL: daemon.url });
    assert.equal(health.code, 0);
    assert.equal(health.lines[0].status, 'healthy');
    const cache = await runLvp(['cache', 'ls'], env());
    assert.equal(cache.code, 0);
    assert.ok(cache.lines[0].total_entries >= 1);
    const help = await runLvp(['--help'], {});
    assert.equal(help.code, 0);
    for (const line of [/^ {2}0 /m, /^ {2}1 /m, /^ {2}2 /m, /^ {2}3 /m, /^ {2}4 /m, /^ {2}130 /m]) {
      assert.match(help.stdout, line);
    }
  });

  it('detaches on Ctrl-C without a terminal: exit 130, prints the job id, the job goes on', async () => {
    server.bytesPerSecond = MIB;
    try {
      const submitted = await daemon.provision(
        { image_url: image('detach'), volume_name: 'vm-cli-detach', volume_size_gb: 1, image_type: 'qcow2' },
        auth,
      );
      const jobId = submitted.body.job_id;
      const run = new Lvp(['watch', jobId], env());
      await waitFor('the first event', () => run.lines().length > 0);
      run.child.kill('SIGINT');
      const result = await run.done;
      assert.equal(result.code, 130);
      assert.ok(result.stderr.includes(jobId), result.stderr);
      assert.deepEqual(result.lines.at(-1), { event: 'detached', job_id: jobId });
      assert.equal((await statusOf(jobId)).status, 'running', 'Ctrl-C must never cancel silently');
      await daemon.request('DELETE', `/api/v1/cancel/${jobId}`, undefined, auth);
    } finally {
      server.bytesPerSecond = 0;
    }
  });

  /** A stage line of the pane (`downloading`, `streaming download`, ...): its percentage and bytes done, when it shows some. */
  function barLine(pane: string, label: string): { percent: number; done: string } | undefined {
    const match = new RegExp(`${label}\\s+\\[[#.]+\\]\\s+(\\d+)%\\s+([\\d.]+ \\w+) /`).exec(pane);
    return match ? { percent: Number(match[1]), done: match[2] } : undefined;
  }

  /** The download's line: `downloading`, or `streaming download` once the image is written while it downloads. */
  function downloadLine(pane: string): { percent: number; done: string } | undefined {
    return barLine(pane, 'downloading') ?? barLine(pane, 'streaming download');
  }

  function lvpInTmux(args: string[]): void {
    const command = [
      'env',
      `LVP_URL=${daemon.url}`,
      `LVP_TOKEN=${TOKEN}`,
      process.execPath,
      LVP_MAIN,
      ...args,
    ].map(shellQuote);
    tmux.kill();
    tmux.start(`${command.join(' ')}; echo "LVP-EXIT=$?"; sleep 600`);
  }

  it('draws a download bar and a write bar while a job streams, in a real terminal (tmux); the percent never goes down', async () => {
    // 64 MiB of data at 8 MiB/s: the image is written while it downloads (STREAM_CONVERT=auto, the
    // default), for about 8 s. (qemu-img's progress counts requests as it issues them, 16 MiB ahead:
    // with less data the write bar would be full at once.) The same job is followed twice: in tmux
    // (bars) and as JSON lines.
    copyFileSync(uniqueQcow2(work.dir, 'tty-stream', 64), join(www, 'tty-stream.qcow2'));
    server.bytesPerSecond = 8 * MIB;
    try {
      lvpInTmux(['provision', `${server.url}/tty-stream.qcow2`, 'vm-cli-tty', '--size', '1', '--wait']);
      const jobId = await waitFor('the job id', () => /job ([0-9a-f-]{36}) /.exec(tmux.capture())?.[1]);
      const json = new Lvp(['watch', jobId], env(), 180_000);
      const panes: string[] = [];
      const sample = () => {
        const pane = tmux.capture();
        panes.push(pane);
        return pane;
      };
      const first = await waitFor('both streaming bars, the download under way', () => {
        const pane = sample();
        const download = barLine(pane, 'streaming download');
        const write = barLine(pane, 'streaming write');
        return download && write && download.percent < 100 ? { download, write } : undefined;
      });
      await waitFor('both bars to advance', () => {
        const pane = sample();
        const download = barLine(pane, 'streaming download');
        const write = barLine(pane, 'streaming write');
        return (
          download &&
          write &&
          download.percent > first.download.percent &&
          write.percent > first.write.percent
        );
      });
      // About 10 s alone; far more on a loaded machine (18 s seen with the download at half speed).
      const pane = await waitFor(
        'lvp to end',
        () => {
          const text = sample();
          return /LVP-EXIT=\d+/.test(text) ? text : undefined;
        },
        120_000,
      );
      assert.match(pane, /LVP-EXIT=0/, pane);
      assert.match(pane, /completed: volume vm-cli-tty/);
      assert.match(pane, /streaming download +\[#{30}\] +100% +done/, pane);
      assert.match(pane, /streaming write +\[#{30}\] +100% +done +128 MiB/, pane);
      assert.doesNotMatch(pane, /converting/, 'a streamed job has no converting stage');
      assert.match(pane, /MiB\/s/, 'throughput was shown');
      // The overall line lvp drew, sample by sample, never went back.
      const shown = panes.flatMap((p) => {
        const match = /job [0-9a-f]{8} \w+ +\[[#.]+\] +([\d.]+)%/.exec(p);
        return match ? [Number(match[1])] : [];
      });
      assert.ok(shown.length >= 3, `overall line seen ${shown.length} times`);
      assert.deepEqual(
        shown,
        [...shown].sort((a, b) => a - b),
        `overall percent went back: ${shown.join(' ')}`,
      );

      // What lvp received: during `streaming`, both byte counts; every count and the percent monotone.
      const result = await json.done;
      assert.equal(result.code, 0, result.stderr);
      const streaming = result.lines.filter((line) => line.progress?.stage === 'streaming');
      // The `stage` event that opens the stage carries no counters yet; each `progress` event both.
      const counted = streaming.filter((line) => line.event === 'progress');
      assert.ok(counted.length >= 3, `${counted.length} streaming progress events`);
      for (const field of ['percent', 'bytes_processed', 'write_bytes_processed']) {
        const values = counted.map((line) => line.progress[field]);
        assert.deepEqual(
          values,
          [...values].sort((a, b) => a - b),
          `${field}: ${values.join(' ')}`,
        );
      }
      const percents = result.lines.map((line) => line.progress.percent);
      assert.deepEqual(
        percents,
        [...percents].sort((a, b) => a - b),
        `percent: ${percents.join(' ')}`,
      );
      assert.ok(counted.every((line) => line.progress.write_bytes_total === 128 * MIB));
      const midway = counted.find(
        (line) =>
          line.progress.write_bytes_processed > 0 &&
          line.progress.bytes_processed < line.progress.bytes_total,
      );
      assert.ok(midway, 'a status showed bytes written before the download had ended');
    } finally {
      server.bytesPerSecond = 0;
      tmux.kill();
    }
  });

  it('asks before cancelling on Ctrl-C in a terminal: "n" goes on following, "y" cancels and exits 3', async () => {
    server.bytesPerSecond = MIB;
    try {
      lvpInTmux(['provision', image('ask'), 'vm-cli-ask', '--size', '1', '--wait']);
      await waitFor('the download bar', () => downloadLine(tmux.capture()));
      tmux.sendKeys('C-c');
      const question = await waitFor(
        'the question',
        () => /Cancel job ([0-9a-f-]{36})\? \[y\/N\]/.exec(tmux.capture()) ?? undefined,
      );
      const jobId = question[1];
      assert.equal((await statusOf(jobId)).status, 'running');
      tmux.sendKeys('n', 'Enter');
      await waitFor('lvp to go on', () => /not cancelled; still following/.test(tmux.capture()));
      assert.equal((await statusOf(jobId)).status, 'running');
      tmux.sendKeys('C-c');
      await waitFor('the question again', () => tmux.capture().match(/\[y\/N\]/g)?.length === 2);
      tmux.sendKeys('y', 'Enter');
      const pane = await waitFor('lvp to end', () => {
        const text = tmux.capture();
        return /LVP-EXIT=\d+/.test(text) ? text : undefined;
      });
      assert.match(pane, /LVP-EXIT=3/, pane);
      assert.equal((await statusOf(jobId)).status, 'cancelled');
    } finally {
      server.bytesPerSecond = 0;
      tmux.kill();
    }
  });

  // Last: it restarts the daemon.
  it('lvp watch reconnects after the daemon dies and comes back, and follows the resumed job to its end', async () => {
    server.bytesPerSecond = MIB;
    try {
      const submitted = await daemon.provision(
        {
          image_url: image('restart'),
          volume_name: 'vm-cli-restart',
          volume_size_gb: 1,
          image_type: 'qcow2',
        },
        auth,
      );
      const jobId = submitted.body.job_id;
      const run = new Lvp(['watch', jobId], env());
      // Bytes in the partial file, not only the stage: the download thread takes a moment to start,
      // and a crash before its first write leaves nothing to resume from.
      await waitFor('lvp to report downloaded bytes', () =>
        run.lines().some(
          (line) =>
            // Cold, so written while it downloads: the download goes on in stage `streaming`.
            ['downloading', 'streaming'].includes(line.progress?.stage) && line.progress.bytes_processed > 0,
        ),
      );
      const port = daemon.port;
      // A crash mid-download, then a start on the same address: the job resumes and completes.
      await daemon.kill9();
      await waitFor('lvp to notice', () => /reconnecting/.test(run.stderr));
      server.bytesPerSecond = 0;
      daemon = await new Daemon({ dir: work.dir, env: { ...daemonEnv(), PORT: String(port) } }).start();
      const result = await run.done;
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /reconnected/);
      assert.ok(
        result.lines.filter((line) => line.event === 'state').length >= 2,
        'one state per connection',
      );
      const { event, ...final } = result.lines.at(-1);
      assert.equal(event, 'end');
      assert.equal(final.status, 'completed');
      assert.equal(final.resumed, 1);
      assert.ok(final.resumed_from_bytes > 0, `resumed from ${final.resumed_from_bytes} bytes`);
      assert.deepEqual(final, await statusOf(jobId));
    } finally {
      server.bytesPerSecond = 0;
    }
  });
});

describe('lvp over TLS, with curl’s --cacert/--cert/--key', () => {
  const work = makeWorkdir('cli-tls');
  let daemon: Daemon;
  let ca: TestCa;
  let client: { cert: string; key: string };
  let stranger: { cert: string; key: string };
  let url: string;

  before(async () => {
    ca = new TestCa(work.dir, 'lvp-ca');
    const serverPair = ca.issue('127.0.0.1', 'IP:127.0.0.1', 'serverAuth');
    client = ca.issue('operator', 'DNS:operator.example', 'clientAuth');
    stranger = new TestCa(work.dir, 'other-ca').issue('operator', 'DNS:operator.example', 'clientAuth');
    daemon = await new Daemon({
      dir: work.dir,
      env: { TLS_CERT_FILE: serverPair.cert, TLS_KEY_FILE: serverPair.key, CLIENT_CA_CERT: ca.cert },
    }).start();
    url = `https://127.0.0.1:${daemon.port}`;
  });

  after(async () => {
    await daemon?.stop();
    work.cleanup();
  });

  it('authenticates with a client certificate, also with the key inside the certificate file', async () => {
    const separate = await runLvp(['jobs', '--cacert', ca.cert, '--cert', client.cert, '--key', client.key], {
      LVP_URL: url,
    });
    assert.equal(separate.code, 0, separate.stderr);
    assert.equal(separate.lines[0].total, 0);
    const combined = join(work.dir, 'operator.pem');
    writeFileSync(combined, readFileSync(client.cert, 'utf8') + readFileSync(client.key, 'utf8'));
    const oneFile = await runLvp(['jobs'], { LVP_URL: url, LVP_CACERT: ca.cert, LVP_CERT: combined });
    assert.equal(oneFile.code, 0, oneFile.stderr);
  });

  it('exits 4 when the daemon’s certificate cannot be verified, or the client certificate is not trusted', async () => {
    const unverified = await runLvp(['jobs', '--cert', client.cert, '--key', client.key], { LVP_URL: url });
    assert.equal(unverified.code, 4);
    assert.match(unverified.stderr, /TLS: cannot verify the certificate.*--cacert/);
    const untrusted = await runLvp(
      ['jobs', '--cacert', ca.cert, '--cert', stranger.cert, '--key', stranger.key],
      { LVP_URL: url },
    );
    assert.equal(untrusted.code, 4);
    assert.match(untrusted.stderr, /401/);
  });
});

describe('lvp starts fast', () => {
  it('loads none of Nest, Swagger, class-validator or Fastify: only the DTO types are shared', () => {
    const cli = join(__dirname, '..', '..', 'src', 'cli');
    const loaded = execFileSync(
      process.execPath,
      [
        '-e',
        `for (const m of ['program', 'commands', 'job-view']) require(${JSON.stringify(cli)} + '/' + m);` +
          'console.log(Object.keys(require.cache).join("\\n"))',
      ],
      { encoding: 'utf8' },
    ).split('\n');
    assert.ok(loaded.some((file) => file.includes('commander')));
    assert.deepEqual(
      loaded.filter((file) =>
        /@nestjs|class-validator|class-transformer|fastify|reflect-metadata/.test(file),
      ),
      [],
    );
  });
});
