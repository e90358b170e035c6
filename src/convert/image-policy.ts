import type { DetectedFormat } from './image-format';
import type { Qcow2Header, VmdkDescriptor } from './image-header';
import type { ImageInfo } from './qemu-img';

/** Everything the policy looks at; gathered by the inspect stage. */
export interface ImageFacts {
  url: string;
  /** What the request said (`auto` lets detection decide). */
  declared: string;
  detected: DetectedFormat;
  qcow2?: Qcow2Header;
  vmdk?: VmdkDescriptor;
  /** qemu-img's view, when it got that far. */
  info?: ImageInfo;
  volumeBytes: number;
}

export interface Refusal {
  rule: string;
  message: string;
}

/** vmdk subformats that keep everything in the one file we downloaded. */
const SELF_CONTAINED_VMDK = ['monolithicSparse', 'streamOptimized'];

/**
 * Whether a format may be read at all, before qemu-img touches the file. Pure; every refusal
 * names its rule and the image.
 */
export function checkHeader(facts: Omit<ImageFacts, 'info'>): Refusal | undefined {
  const { url, declared, detected } = facts;
  if (declared !== 'auto' && detected !== declared) {
    return {
      rule: 'format-mismatch',
      message: `image ${url} is ${detected}, but the request says image_type ${declared}; send the image_type that matches the file`,
    };
  }
  if (detected === 'qcow' || detected === 'qed') {
    return {
      rule: 'format-unsupported',
      message: `image ${url} is ${detected}, a format this daemon does not accept`,
    };
  }
  const q = facts.qcow2;
  if (q) {
    if (q.backingFileOffset !== 0n || q.backingFileSize !== 0) {
      return {
        rule: 'no-backing-file',
        message: `image ${url} names a backing file: backing files are not allowed`,
      };
    }
    if (q.externalDataFile) {
      return {
        rule: 'no-external-data-file',
        message: `image ${url} keeps its data in an external data file: not allowed`,
      };
    }
    if (q.virtualSize > BigInt(facts.volumeBytes)) {
      return {
        rule: 'fits-volume',
        message: `image ${url} claims a virtual size of ${q.virtualSize} bytes, larger than the requested volume of ${facts.volumeBytes} bytes`,
      };
    }
  }
  if (detected === 'vmdk') {
    const d = facts.vmdk;
    if (!d || !d.createType || !SELF_CONTAINED_VMDK.includes(d.createType)) {
      return {
        rule: 'vmdk-self-contained',
        message: `image ${url} is a vmdk of type ${d?.createType ?? 'unknown'}; only ${SELF_CONTAINED_VMDK.join(' and ')} (one self-contained file) are allowed`,
      };
    }
    if (d.parentFileNameHint) {
      return {
        rule: 'no-backing-file',
        message: `image ${url} is a vmdk delta of ${d.parentFileNameHint}: not allowed`,
      };
    }
    if (
      d.extents.length !== 1 ||
      (d.extents[0].type !== 'SPARSE' && d.extents[0].type !== 'STREAM_OPTIMIZED')
    ) {
      return {
        rule: 'vmdk-self-contained',
        message: `image ${url} has vmdk extents other than its own file: not allowed`,
      };
    }
  }
  return undefined;
}

/** What qemu-img found, checked against the same rules and the target volume. */
export function checkInfo(facts: ImageFacts): Refusal | undefined {
  const { url, info } = facts;
  if (!info) return undefined;
  if (info.backingFilename || info.backingFormat) {
    return {
      rule: 'no-backing-file',
      message: `image ${url} names a backing file (${info.backingFilename ?? info.backingFormat}): backing files are not allowed`,
    };
  }
  if (info.dataFile) {
    return {
      rule: 'no-external-data-file',
      message: `image ${url} uses an external data file (${info.dataFile}): not allowed`,
    };
  }
  if (info.vmdkExtents && info.vmdkExtents.length !== 1) {
    return {
      rule: 'vmdk-self-contained',
      message: `image ${url} has ${info.vmdkExtents.length} vmdk extents: not allowed`,
    };
  }
  if (info.corrupt) {
    return { rule: 'not-corrupt', message: `image ${url} is marked corrupt by qemu-img` };
  }
  if (!Number.isSafeInteger(info.virtualSize) || info.virtualSize <= 0) {
    return {
      rule: 'sane-virtual-size',
      message: `image ${url} claims a virtual size of ${info.virtualSize} bytes`,
    };
  }
  if (info.virtualSize > facts.volumeBytes) {
    return {
      rule: 'fits-volume',
      message: `image ${url} has a virtual size of ${info.virtualSize} bytes, larger than the requested volume of ${facts.volumeBytes} bytes`,
    };
  }
  return undefined;
}
