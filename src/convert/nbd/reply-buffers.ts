/** A READ's data buffer, and how to hand it back once the socket has sent it. */
export interface ReplyBuffer {
  data: Buffer;
  release(): void;
}

/**
 * Reusable buffers for the data of READ replies. A fresh `Buffer.allocUnsafe(2 MiB)` per READ
 * (qemu-img reads a qcow2 in requests of about 2 MiB) is a new memory mapping each time: the thread
 * reading the file faults in its pages, V8 counts it as external memory and collects garbage to
 * free it. Measured on a 1 GiB qcow2 through the export: 1.6 s of process CPU for 1 GiB, most of it
 * those faults and collections; reused slabs take that away. A request larger than a slab (up to
 * MAX_READ) gets a buffer of its own; at most `keep` slabs are kept (2 MiB × 16 = qemu-img's 16
 * requests in flight), the rest are left to the garbage collector.
 */
export class ReplyBuffers {
  private readonly free: Buffer[] = [];

  constructor(
    readonly slabBytes = 2 * 1024 * 1024,
    readonly keep = 16,
  ) {}

  take(length: number): ReplyBuffer {
    if (length > this.slabBytes) return { data: Buffer.allocUnsafeSlow(length), release: () => {} };
    const slab = this.free.pop() ?? Buffer.allocUnsafeSlow(this.slabBytes);
    let released = false;
    return {
      data: slab.subarray(0, length),
      release: () => {
        if (released) return;
        released = true;
        if (this.free.length < this.keep) this.free.push(slab);
      },
    };
  }

  /** Slabs waiting to be reused (for the tests). */
  get idle(): number {
    return this.free.length;
  }
}
