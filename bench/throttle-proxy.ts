/**
 * A TCP proxy that limits what flows from the server to its clients to a rate, as a network link
 * does (issue #18: the S3 source behind a 1 GbE link, 110 MB/s). One token bucket for all
 * connections together (they share the link); what clients send to the server is not limited (a
 * few request headers). Run as its own process so that its timers do not share an event loop with
 * the S3 server or the bench's clients:
 *
 *   node dist/bench/throttle-proxy.js HOST:PORT RATE   (RATE in bytes/s; 0: unlimited)
 *
 * It prints its port on stdout; each stdin line `rate N` changes the rate (answered `rate N`).
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

/**
 * Bytes the bucket holds at most (~150 ms at 110 MB/s): what the proxy may send at once to catch up
 * after its timers fired late. On this 2-core machine at load average 13, with 1 MiB a 110 MB/s
 * limit delivered 73 MB/s (timers tens of ms late lost the time); 4 MiB 90-103 MB/s, 16 MiB 112-114
 * MB/s for a 400 MiB transfer (the full bucket at the start is the 2-4 % over). The bench prints what
 * the link delivered.
 */
const BURST = 16 * 1024 * 1024;

export class TokenBucket {
  private tokens = BURST;
  private last = process.hrtime.bigint();

  constructor(public bytesPerSecond: number) {}

  /** Takes `bytes` (the bucket may go into debt); returns ms to wait before taking more, 0: none. */
  take(bytes: number): number {
    if (this.bytesPerSecond <= 0) return 0;
    this.refill();
    this.tokens -= bytes;
    return this.wait();
  }

  /** Ms until the bucket is out of debt again. */
  wait(): number {
    if (this.bytesPerSecond <= 0) return 0;
    this.refill();
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.bytesPerSecond) * 1000);
  }

  private refill(): void {
    const now = process.hrtime.bigint();
    const seconds = Number(now - this.last) / 1e9;
    this.last = now;
    this.tokens = Math.min(BURST, this.tokens + seconds * this.bytesPerSecond);
  }
}

/** Pipes `from` into `to` at what the bucket allows, minding `to`'s back-pressure. */
function throttled(from: Socket, to: Socket, bucket: TokenBucket): void {
  const resumeWhenPaid = () => {
    const ms = bucket.wait();
    if (ms > 0) setTimeout(resumeWhenPaid, ms);
    else if (to.writableNeedDrain) to.once('drain', resumeWhenPaid);
    else from.resume();
  };
  from.on('data', (chunk: Buffer) => {
    const full = !to.write(chunk);
    const ms = bucket.take(chunk.length);
    if (ms > 0 || full) {
      from.pause();
      if (ms > 0) setTimeout(resumeWhenPaid, ms);
      else to.once('drain', resumeWhenPaid);
    }
  });
  from.on('end', () => to.end());
}

export function startProxy(target: { host: string; port: number }, bucket: TokenBucket) {
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream, { end: true });
    throttled(upstream, client, bucket);
  });
  return new Promise<AddressInfo>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(server.address() as AddressInfo)),
  );
}

/** The proxy as a child process, seen from the bench. */
export class ThrottleProxy {
  private constructor(
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    private readonly lines: AsyncIterator<string>,
    readonly port: number,
  ) {}

  static async start(target: string, bytesPerSecond: number): Promise<ThrottleProxy> {
    const child = spawn(process.execPath, [__filename, target, String(bytesPerSecond)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done || !/^\d+$/.test(first.value)) throw new Error('the throttling proxy did not start');
    return new ThrottleProxy(child, lines, Number(first.value));
  }

  get endpoint(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Bytes per second from now on (0: unlimited); resolves when the proxy has taken it. */
  async setRate(bytesPerSecond: number): Promise<void> {
    this.child.stdin.write(`rate ${bytesPerSecond}\n`);
    const answer = await this.lines.next();
    if (answer.value !== `rate ${bytesPerSecond}`) throw new Error(`proxy answered ${answer.value}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.stdin.end();
    await once(this.child, 'exit');
  }
}

if (require.main === module) {
  const [hostPort, rate] = process.argv.slice(2);
  const match = /^([\d.]+):(\d+)$/.exec(hostPort ?? '');
  if (!match || !/^\d+$/.test(rate ?? '')) {
    process.stderr.write('usage: throttle-proxy.js HOST:PORT BYTES_PER_SECOND (0: unlimited)\n');
    process.exit(2);
  }
  const bucket = new TokenBucket(Number(rate));
  void startProxy({ host: match[1], port: Number(match[2]) }, bucket).then((address) => {
    process.stdout.write(`${address.port}\n`);
  });
  createInterface({ input: process.stdin }).on('line', (line) => {
    const set = /^rate (\d+)$/.exec(line.trim());
    if (set) bucket.bytesPerSecond = Number(set[1]);
    process.stdout.write(`rate ${bucket.bytesPerSecond}\n`);
  });
  process.stdin.on('end', () => process.exit(0));
}
