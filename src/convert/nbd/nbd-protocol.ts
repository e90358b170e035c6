/**
 * The part of the NBD protocol (github.com/NetworkBlockDevice/nbd, doc/proto.md) a read-only export
 * needs: the fixed newstyle handshake, NBD_OPT_GO / NBD_OPT_INFO / NBD_OPT_EXPORT_NAME /
 * NBD_OPT_ABORT / NBD_OPT_STRUCTURED_REPLY, and NBD_CMD_READ / NBD_CMD_DISC with simple or
 * structured replies. Pure: bytes in, bytes out. Everything else a client asks for is answered
 * "unsupported", which qemu and libnbd handle by falling back (no meta contexts, no TLS).
 *
 * Why our own: npm has no maintained NBD server library (its package list holds nothing named or
 * described as one; `nbdime` is an unrelated notebook tool), and nbdkit's file plugin cannot block
 * a read on bytes a download has not written yet. The subset is ~200 lines and has no native code.
 */

export const NBDMAGIC = 0x4e42444d41474943n;
export const IHAVEOPT = 0x49484156454f5054n;
const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
const REPLY_FLAG_DONE = 1;
const REPLY_TYPE_OFFSET_DATA = 1;
const REPLY_TYPE_ERROR = (1 << 15) | 1;

/** Handshake flags (server) and client flags. */
export const FLAG_FIXED_NEWSTYLE = 1;
export const FLAG_NO_ZEROES = 2;

/** Transmission flags: the export has flags, and is read-only. */
export const TRANSMISSION_FLAGS = 0x1 | 0x2;

export const OPT = { EXPORT_NAME: 1, ABORT: 2, INFO: 6, GO: 7, STRUCTURED_REPLY: 8 } as const;
export const REP = {
  ACK: 1,
  INFO: 3,
  ERR_UNSUP: 0x80000001,
  ERR_INVALID: 0x80000003,
  ERR_UNKNOWN: 0x80000006,
} as const;
const INFO_EXPORT = 0;
const INFO_BLOCK_SIZE = 3;

export const CMD = { READ: 0, WRITE: 1, DISC: 2 } as const;
/** Error numbers on the wire (the protocol's, not the host's). */
export const NBD_ERR = { EPERM: 1, EIO: 5, EINVAL: 22, EOVERFLOW: 75 } as const;

/** Largest READ served: the protocol's usual maximum payload (clients split larger reads). */
export const MAX_READ = 32 * 1024 * 1024;

export const OPTION_HEADER_BYTES = 16;
export const REQUEST_BYTES = 28;

/** The server's first 18 bytes: magic, IHAVEOPT, handshake flags. */
export function serverGreeting(): Buffer {
  const out = Buffer.alloc(18);
  out.writeBigUInt64BE(NBDMAGIC, 0);
  out.writeBigUInt64BE(IHAVEOPT, 8);
  out.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
  return out;
}

export interface OptionHeader {
  option: number;
  length: number;
}

/** A client option's 16-byte header, or why it is not one. */
export function parseOptionHeader(bytes: Buffer): OptionHeader | { error: string } {
  if (bytes.readBigUInt64BE(0) !== IHAVEOPT) return { error: 'option without IHAVEOPT magic' };
  return { option: bytes.readUInt32BE(8), length: bytes.readUInt32BE(12) };
}

/** An option reply: magic, option, reply type, length, data. */
export function optionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(20);
  head.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  head.writeUInt32BE(option, 8);
  head.writeUInt32BE(type, 12);
  head.writeUInt32BE(data.length, 16);
  return Buffer.concat([head, data]);
}

/** NBD_OPT_GO / NBD_OPT_INFO data: the export name and the information requests. */
export function parseGoData(data: Buffer): { name: string; requests: number[] } | undefined {
  if (data.length < 6) return undefined;
  const nameLength = data.readUInt32BE(0);
  if (4 + nameLength + 2 > data.length) return undefined;
  const name = data.subarray(4, 4 + nameLength).toString('utf8');
  const count = data.readUInt16BE(4 + nameLength);
  if (4 + nameLength + 2 + 2 * count !== data.length) return undefined;
  const requests: number[] = [];
  for (let i = 0; i < count; i++) requests.push(data.readUInt16BE(4 + nameLength + 2 + 2 * i));
  return { name, requests };
}

/** The replies to a successful NBD_OPT_GO / NBD_OPT_INFO: the export's size and flags, block sizes, ACK. */
export function goReplies(option: number, size: number): Buffer[] {
  const exportInfo = Buffer.alloc(12);
  exportInfo.writeUInt16BE(INFO_EXPORT, 0);
  exportInfo.writeBigUInt64BE(BigInt(size), 2);
  exportInfo.writeUInt16BE(TRANSMISSION_FLAGS, 10);
  // Any alignment is fine (reads are served from a file); the preferred size is a qcow2 cluster.
  const blockSize = Buffer.alloc(14);
  blockSize.writeUInt16BE(INFO_BLOCK_SIZE, 0);
  blockSize.writeUInt32BE(1, 2);
  blockSize.writeUInt32BE(64 * 1024, 6);
  blockSize.writeUInt32BE(MAX_READ, 10);
  return [
    optionReply(option, REP.INFO, exportInfo),
    optionReply(option, REP.INFO, blockSize),
    optionReply(option, REP.ACK),
  ];
}

/** The answer to NBD_OPT_EXPORT_NAME (old style: no reply header): size, flags, and 124 zeros unless NO_ZEROES. */
export function exportNameReply(size: number, noZeroes: boolean): Buffer {
  const out = Buffer.alloc(noZeroes ? 10 : 134);
  out.writeBigUInt64BE(BigInt(size), 0);
  out.writeUInt16BE(TRANSMISSION_FLAGS, 8);
  return out;
}

export interface Request {
  flags: number;
  type: number;
  /** The client's cookie, echoed in the reply. */
  handle: Buffer;
  offset: number;
  length: number;
}

/** A 28-byte transmission request, or why it is not one. */
export function parseRequest(bytes: Buffer): Request | { error: string } {
  if (bytes.readUInt32BE(0) !== REQUEST_MAGIC) return { error: 'request without the request magic' };
  const offset = bytes.readBigUInt64BE(16);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) return { error: 'offset out of range' };
  return {
    flags: bytes.readUInt16BE(4),
    type: bytes.readUInt16BE(6),
    handle: Buffer.from(bytes.subarray(8, 16)),
    offset: Number(offset),
    length: bytes.readUInt32BE(24),
  };
}

/** A simple reply's 16-byte header (the data of a successful READ follows it). */
export function simpleReply(handle: Buffer, error: number): Buffer {
  const out = Buffer.alloc(16);
  out.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  out.writeUInt32BE(error, 4);
  handle.copy(out, 8);
  return out;
}

/** Whether a READ of `length` bytes at `offset` is one this export serves, else the NBD error for it. */
export function readProblem(offset: number, length: number, size: number): number | undefined {
  if (length > MAX_READ) return NBD_ERR.EOVERFLOW;
  if (length === 0 || offset + length > size) return NBD_ERR.EINVAL;
  return undefined;
}

/**
 * The header of a READ's one structured reply chunk (NBD_REPLY_TYPE_OFFSET_DATA, done): the
 * `length` data bytes at `offset` follow it. Why structured replies: qemu rounds a device up to
 * 512 bytes and, reading the last partial sector, shortens its request to the export's end but
 * then waits for the whole sector's bytes in a simple reply (measured: qemu-img convert of a
 * 1687607-byte qcow2 hung on its last read). A chunk says how many bytes it carries; qemu pads
 * the rest with zeros, as it does reading past the end of a file.
 */
export function structuredReadHeader(handle: Buffer, offset: number, length: number): Buffer {
  const out = Buffer.alloc(28);
  out.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  out.writeUInt16BE(REPLY_FLAG_DONE, 4);
  out.writeUInt16BE(REPLY_TYPE_OFFSET_DATA, 6);
  handle.copy(out, 8);
  out.writeUInt32BE(8 + length, 16);
  out.writeBigUInt64BE(BigInt(offset), 20);
  return out;
}

/** A READ's structured error chunk (NBD_REPLY_TYPE_ERROR, done, no message). */
export function structuredError(handle: Buffer, error: number): Buffer {
  const out = Buffer.alloc(26);
  out.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
  out.writeUInt16BE(REPLY_FLAG_DONE, 4);
  out.writeUInt16BE(REPLY_TYPE_ERROR, 6);
  handle.copy(out, 8);
  out.writeUInt32BE(6, 16);
  out.writeUInt32BE(error, 20);
  out.writeUInt16BE(0, 24);
  return out;
}
