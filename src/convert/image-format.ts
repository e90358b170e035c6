import { open } from 'node:fs/promises';

/**
 * Image formats this daemon accepts, and format detection from the first bytes of a file.
 * Detection is ours (not qemu-img's probing): a raw image must never be opened as anything else.
 */
export const IMAGE_TYPES = ['qcow2', 'raw'] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];

/** Formats we can recognise by their magic, supported or not; used to refuse a mislabelled image. */
export type DetectedFormat = 'qcow2' | 'qcow' | 'vmdk' | 'vdi' | 'vhdx' | 'vpc' | 'qed' | 'raw';

/** Bytes of the header detectFormat() needs. */
export const HEADER_BYTES = 512;

export function detectFormat(header: Buffer): DetectedFormat {
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
  return 'raw';
}

/** The first HEADER_BYTES of a file (fewer when it is shorter). */
export async function readImageHeader(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEADER_BYTES, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
