/**
 * Facts read from an image's own header, without qemu-img: the policy must not depend on one
 * parser alone. Pure functions over the first bytes of the file.
 */

export interface Qcow2Header {
  version: number;
  virtualSize: bigint;
  backingFileOffset: bigint;
  backingFileSize: number;
  incompatibleFeatures: bigint;
  /** Incompatible feature bit 2: the guest data lives in another file (OSSA-2024-001). */
  externalDataFile: boolean;
}

/** Bytes of a qcow2 header this parser needs (v3 header is 104 bytes). */
export const QCOW2_HEADER_BYTES = 104;

export function parseQcow2Header(header: Buffer): Qcow2Header | undefined {
  if (header.length < 72 || header.readUInt32BE(0) !== 0x514649fb) return undefined;
  const version = header.readUInt32BE(4);
  const incompatibleFeatures = version >= 3 && header.length >= 80 ? header.readBigUInt64BE(72) : 0n;
  return {
    version,
    backingFileOffset: header.readBigUInt64BE(8),
    backingFileSize: header.readUInt32BE(16),
    virtualSize: header.readBigUInt64BE(24),
    incompatibleFeatures,
    externalDataFile: (incompatibleFeatures & 0b100n) !== 0n,
  };
}

export interface VmdkExtent {
  access: string;
  sectors: number;
  type: string;
  file?: string;
}

export interface VmdkDescriptor {
  createType?: string;
  extents: VmdkExtent[];
  /** Set when the descriptor names a parent disk (a delta/backing chain). */
  parentFileNameHint?: string;
}

/**
 * The text descriptor of a vmdk: embedded in a sparse vmdk (offset and size in its header) or
 * the whole file for descriptor-only vmdks. Returns undefined when `header` is no vmdk.
 */
export function vmdkDescriptorText(header: Buffer): string | undefined {
  if (header.subarray(0, 4).toString('latin1') === 'KDMV') {
    const offset = Number(header.readBigUInt64LE(28)) * 512;
    const size = Number(header.readBigUInt64LE(36)) * 512;
    if (offset <= 0 || size <= 0 || offset + size > header.length) return '';
    return header
      .subarray(offset, offset + size)
      .toString('latin1')
      .replace(/\0+$/, '');
  }
  const text = header.toString('latin1');
  return text.startsWith('# Disk DescriptorFile') ? text.replace(/\0+$/, '') : undefined;
}

export function parseVmdkDescriptor(text: string): VmdkDescriptor {
  const descriptor: VmdkDescriptor = { extents: [] };
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const createType = /^createType\s*=\s*"([^"]*)"/.exec(line);
    if (createType) descriptor.createType = createType[1];
    const parent = /^parentFileNameHint\s*=\s*"([^"]*)"/.exec(line);
    if (parent) descriptor.parentFileNameHint = parent[1];
    const extent = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)")?/.exec(line);
    if (extent)
      descriptor.extents.push({
        access: extent[1],
        sectors: Number(extent[2]),
        type: extent[3],
        file: extent[4],
      });
  }
  return descriptor;
}
