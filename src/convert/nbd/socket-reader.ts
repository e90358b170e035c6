import type { Socket } from 'node:net';

/**
 * Reads exact byte counts off a socket: `read(n)` resolves with the next n bytes, in order.
 * Rejects once the peer has closed (or the socket failed) before n bytes came.
 */
export class SocketReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private pending?: { bytes: number; resolve: (data: Buffer) => void; reject: (error: Error) => void };
  private closed?: Error;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.serve();
    });
    const close = (error?: Error) => {
      this.closed ??= error ?? new Error('the NBD client closed the connection');
      this.serve();
    };
    socket.on('end', () => close());
    socket.on('close', () => close());
    socket.on('error', (error) => close(error));
  }

  read(bytes: number): Promise<Buffer> {
    if (this.pending) return Promise.reject(new Error('SocketReader: one read at a time'));
    return new Promise((resolve, reject) => {
      this.pending = { bytes, resolve, reject };
      this.serve();
    });
  }

  private serve(): void {
    const pending = this.pending;
    if (!pending) return;
    if (this.buffered >= pending.bytes) {
      this.pending = undefined;
      const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
      const rest = all.subarray(pending.bytes);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
      pending.resolve(all.subarray(0, pending.bytes));
    } else if (this.closed) {
      this.pending = undefined;
      pending.reject(this.closed);
    }
  }
}
