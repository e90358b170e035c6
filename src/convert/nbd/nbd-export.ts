import { mkdtemp, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Arrivals } from './arrivals';
import { serveHandshake, type Agreed } from './nbd-handshake';
import {
  CMD,
  NBD_ERR,
  REQUEST_BYTES,
  parseRequest,
  readProblem,
  simpleReply,
  structuredError,
  structuredReadHeader,
  type Request,
} from './nbd-protocol';
import { ReadsAhead, type RangeFetch, type ReadsAheadStats } from './reads-ahead';
import { ReplyBuffers, type ReplyBuffer } from './reply-buffers';
import { SocketReader } from './socket-reader';

export interface NbdExportOptions {
  /** The file being downloaded (opened read-only once; reads never go beyond `arrivals.bytes`). */
  file: string;
  /**
   * `file` opened already (read-only), for a caller that must hold it before the download may
   * rename it into the cache; the export takes it over and closes it.
   */
  handle?: FileHandle;
  arrivals: Arrivals;
  /** Where the export's private directory (mode 0700, holding the socket) is made; default the OS tmpdir. */
  parentDir?: string;
  /** Fetches bytes apart from the download, for reads far ahead of it (reads-ahead.ts). */
  fetchRange?: RangeFetch;
}

/** What the export has done, for the job log and the tests. */
export interface NbdExportStats {
  connections: number;
  reads: number;
  /** Reads that had to wait for the download. */
  waitedReads: number;
  /** Reads answered with an error (the download failed, or a request out of range). */
  failedReads: number;
}

/** An export's directory: `lvp-nbd-<the daemon's pid>-<random>`, so a later daemon can tell a dead one's. */
const DIR_PREFIX = 'lvp-nbd-';

/**
 * Removes the export directories (and their sockets) of daemons no longer alive: a daemon killed
 * while a job streamed (kill -9, OOM) could not close its export. Run at start-up; directories of
 * live processes (another daemon on the host, a test's) are left. Resolves with how many went.
 */
export async function removeStaleExportDirs(parentDir = tmpdir()): Promise<number> {
  let removed = 0;
  for (const name of await readdir(parentDir)) {
    const pid = /^lvp-nbd-(\d+)-/.exec(name)?.[1]; // DIR_PREFIX, the pid
    if (pid === undefined || isAlive(Number(pid))) continue;
    await rm(join(parentDir, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

/** Requests a connection may have in flight before it stops reading more (qemu-img keeps ≤ 16). */
const MAX_IN_FLIGHT = 64;
/** Reply bytes queued on a socket before the export waits for the client to drain them. */
const HIGH_WATER = 8 * 1024 * 1024;

/**
 * A read-only NBD export of a file that is still being downloaded, on a unix socket in a private
 * directory: `qemu-img info|convert nbd+unix:///?socket=…` reads the image while it arrives. A
 * READ of bytes not yet on disk waits for them (never a short read, never zeros); when the
 * download fails, waiting and later reads fail with EIO and qemu-img exits. The export's size is
 * the object's full length, known from the source before the download starts. Reads go through
 * async fs: the event loop stays free while qemu-img pulls data.
 */
export class NbdExport {
  readonly stats: NbdExportStats = { connections: 0, reads: 0, waitedReads: 0, failedReads: 0 };
  private readonly sockets = new Set<Socket>();
  private readonly buffers = new ReplyBuffers();
  private closing?: Promise<void>;
  private readonly closed: Promise<never>;
  private reject!: (error: Error) => void;
  private readonly stopFetching = new AbortController();
  private readonly ahead?: ReadsAhead;

  private constructor(
    private readonly server: Server,
    private readonly handle: FileHandle,
    private readonly arrivals: Arrivals,
    private readonly dir: string,
    readonly socketPath: string,
    fetchRange: RangeFetch | undefined,
  ) {
    this.closed = new Promise<never>((_, reject) => (this.reject = reject));
    this.closed.catch(() => undefined);
    if (fetchRange) this.ahead = new ReadsAhead(fetchRange, arrivals, this.stopFetching.signal);
    server.on('connection', (socket) => this.serve(socket));
  }

  static async open(options: NbdExportOptions): Promise<NbdExport> {
    const dir = await mkdtemp(join(options.parentDir ?? tmpdir(), `${DIR_PREFIX}${process.pid}-`));
    const socketPath = join(dir, 'export.sock');
    let handle: FileHandle | undefined = options.handle;
    try {
      handle ??= await open(options.file, 'r');
      const server = createServer({ allowHalfOpen: false });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => resolve());
      });
      return new NbdExport(server, handle, options.arrivals, dir, socketPath, options.fetchRange);
    } catch (error) {
      await handle?.close();
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** The address qemu-img and nbdinfo take (the default export, whose name is empty). */
  get uri(): string {
    return `nbd+unix:///?socket=${this.socketPath}`;
  }

  /** What the reads fetched ahead of the download did (none without `fetchRange`). */
  get aheadStats(): ReadsAheadStats {
    return this.ahead?.stats ?? { fetched: 0, bytes: 0, failed: 0 };
  }

  /** What the export did, as the job log names it. */
  logFields(): Record<string, number> {
    const ahead = this.aheadStats;
    return {
      reads: this.stats.reads,
      reads_that_waited: this.stats.waitedReads,
      reads_fetched_ahead: ahead.fetched,
      bytes_fetched_ahead: ahead.bytes,
      range_requests_failed: ahead.failed,
    };
  }

  /**
   * Resolves once every byte served ahead of the download matched the downloaded ones; rejects
   * with FetchedAheadDifferError otherwise. Call once the download is whole, before close().
   */
  aheadVerified(): Promise<void> {
    return this.ahead?.verified() ?? Promise.resolve();
  }

  /** Stops serving: drops every connection (their reads fail), closes the file, removes the directory. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.reject(new Error('the NBD export was closed'));
      this.stopFetching.abort();
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const socket of this.sockets) socket.destroy();
      await stopped;
      await this.handle.close();
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.closing;
  }

  private serve(socket: Socket): void {
    this.stats.connections++;
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined); // 'close' follows; a reset client is not the export's failure
    const reader = new SocketReader(socket);
    void (async () => {
      const agreed = await serveHandshake(socket, reader, this.arrivals.size);
      if (agreed) await this.transmit(socket, reader, agreed);
    })()
      .catch(() => undefined)
      .finally(() => socket.destroy());
  }

  /** The transmission phase: READs are served concurrently, replies go out whole, in any order. */
  private async transmit(socket: Socket, reader: SocketReader, agreed: Agreed): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    for (;;) {
      while (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
      const request = parseRequest(await reader.read(REQUEST_BYTES));
      if ('error' in request) return;
      if (request.type === CMD.DISC) {
        await Promise.allSettled(inFlight);
        return;
      }
      if (request.type === CMD.WRITE) {
        // Read-only: swallow the payload, refuse the write.
        await reader.read(request.length);
        socket.write(simpleReply(request.handle, NBD_ERR.EPERM));
        continue;
      }
      if (request.type !== CMD.READ) {
        socket.write(simpleReply(request.handle, NBD_ERR.EINVAL));
        continue;
      }
      const reply = this.read(socket, request, agreed).finally(() => inFlight.delete(reply));
      inFlight.add(reply);
    }
  }

  private async read(socket: Socket, request: Request, agreed: Agreed): Promise<void> {
    this.stats.reads++;
    const fail = (error: number) => {
      this.stats.failedReads++;
      socket.write(
        agreed.structured ? structuredError(request.handle, error) : simpleReply(request.handle, error),
      );
    };
    const problem = readProblem(request.offset, request.length, this.arrivals.size);
    if (problem !== undefined) return fail(problem);
    let buffer: ReplyBuffer | undefined;
    try {
      const end = request.offset + request.length;
      if (end > this.arrivals.bytes && this.ahead?.wants(request.offset, request.length)) {
        const fetched = await this.ahead.take(request.offset, request.length);
        if (fetched) {
          this.ahead.compareLater(request.offset, fetched, (into, at) => this.readFile(into, at));
          buffer = { data: fetched, release: () => undefined };
        }
      }
      if (!buffer && end > this.arrivals.bytes) {
        this.stats.waitedReads++;
        await Promise.race([this.arrivals.waitFor(end), this.closed]);
      }
      if (!buffer) {
        buffer = this.buffers.take(request.length);
        await this.readFile(buffer.data, request.offset);
      }
    } catch {
      buffer?.release();
      return fail(NBD_ERR.EIO);
    }
    // Header and data in one write (corked): no other reply can come between them. The buffer
    // is reused once the socket has handed it to the kernel (or dropped it).
    socket.cork();
    socket.write(
      agreed.structured
        ? structuredReadHeader(request.handle, request.offset, request.length)
        : simpleReply(request.handle, 0),
    );
    socket.write(buffer.data, buffer.release);
    socket.uncork();
    if (socket.writableLength > HIGH_WATER) await drained(socket);
  }

  private async readFile(data: Buffer, offset: number): Promise<void> {
    const length = data.length;
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(data, done, length - done, offset + done);
      if (bytesRead === 0)
        throw new Error(`the file ended at byte ${offset + done}, before the bytes that arrived`);
      done += bytesRead;
    }
  }
}

const draining = new WeakMap<Socket, Promise<void>>();

/**
 * Resolves when the socket has sent what was queued, or closed. One wait per socket, shared by
 * every reply that found the queue full (each adding its own listeners would pile up dozens).
 */
function drained(socket: Socket): Promise<void> {
  let wait = draining.get(socket);
  if (!wait) {
    wait = new Promise<void>((resolve) => {
      const done = () => {
        socket.off('drain', done);
        socket.off('close', done);
        draining.delete(socket);
        resolve();
      };
      socket.on('drain', done);
      socket.on('close', done);
    });
    draining.set(socket, wait);
  }
  return wait;
}
