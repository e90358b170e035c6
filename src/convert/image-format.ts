import { open } from 'node:fs/promises';

/**
 * Image formats this daemon accepts, and format detection from the first bytes of a file.
 * Detection is ours (not qemu-img's probing): a raw image must never be opened as anything else.
 */
export const IMAGE_TYPES = ['qcow2', 'raw', 'vmdk', 'vhdx', 'vpc', 'vdi', 'auto'] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];

/** Formats we can recognise by their magic, supported or not; used to refuse a mislabelled image. */
export type DetectedFormat = 'qcow2' | 'qcow' | 'vmdk' | 'vdi' | 'vhdx' | 'vpc' | 'qed' | 'raw';

/** Bytes read from the start of an image: enough for any header and an embedded vmdk descriptor. */
export const HEADER_BYTES = 64 * 1024;

/**
 * The format by magic bytes. `footer` is the file's last 512 bytes: a fixed-size VHD carries its
 * only "conectix" there.
 */
export function detectFormat(header: Buffer, footer?: Buffer): DetectedFormat {
  const at = (offset: number, text: string) =>
    header.length >= offset + text.length &&
    header.subarray(offset, offset + text.length).toString('latin1') === text;
  if (header.length >= 8 && header.readUInt32BE(0) === 0x514649fb) {
    return header.readUInt32BE(4) >= 2 ? 'qcow2' : 'qcow';
  }
  if (at(0, 'QED\0')) return 'qed';
  if (at(0, 'KDMV') || at(0, '# Disk DescriptorFile')) return 'vmdk';
  if (at(0, 'vhdxfile')) return 'vhdx';
  if (at(0, 'conectix')) return 'vpc';
  if (header.length >= 0x44 && header.readUInt32LE(0x40) === 0xbeda107f) return 'vdi';
  if (footer && footer.length >= 8 && footer.subarray(0, 8).toString('latin1') === 'conectix') return 'vpc';
  return 'raw';
}

/** The first HEADER_BYTES of a file (fewer when it is shorter). */
export async function readImageHeader(path: string): Promise<Buffer> {
  return (await readImageEnds(path)).header;
}

/** The first HEADER_BYTES and the last 512 bytes of a file. */
export async function readImageEnds(path: string): Promise<{ header: Buffer; footer: Buffer }> {
  const handle = await open(path, 'r');
  try {
    const header = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(header, 0, HEADER_BYTES, 0);
    const size = (await handle.stat()).size;
    const footer = Buffer.alloc(Math.min(512, size));
    await handle.read(footer, 0, footer.length, size - footer.length);
    return { header: header.subarray(0, bytesRead), footer };
  } finally {
    await handle.close();
  }
}
