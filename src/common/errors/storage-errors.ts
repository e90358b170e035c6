import { JobFailure } from './domain-error';

/** The volume group or thin pool cannot hold the volume. */
export class InsufficientSpaceError extends JobFailure {
  constructor(where: string, neededBytes: number, freeBytes: number) {
    super(
      'insufficient_space',
      `${where} has ${freeBytes} bytes free, the volume needs ${neededBytes} bytes; free space or ask for less`,
      { needed_bytes: neededBytes, free_bytes: freeBytes },
    );
  }
}

/** The configured volume group (LVM_VOLUME_GROUP) or thin pool (LVM_THIN_POOL) is not there. */
export class StorageMissingError extends JobFailure {
  constructor(kind: 'volume group' | 'thin pool', name: string, setting: string) {
    super(
      kind === 'volume group' ? 'volume_group_missing' : 'thin_pool_missing',
      `${kind} ${name} does not exist; create it or set ${setting} to one that does`,
      { [kind === 'volume group' ? 'volume_group' : 'thin_pool']: name },
    );
  }
}

/** A name that exists in the volume group but is not a volume a VM can use (a thin pool, say). */
export class VolumeUnusableError extends JobFailure {
  constructor(where: string, message: string) {
    super('volume_unusable', message, { volume: where });
  }
}

/** Removal refused: the LV was not made by this daemon (it lacks our tag), so it is not ours to remove. */
export class NotOursError extends JobFailure {
  constructor(where: string, tag: string) {
    super('not_ours', `refusing to remove ${where}: it does not carry the tag ${tag}`, {
      volume: where,
      tag,
    });
  }
}

/** lvcreate said yes, but lvs does not list the volume: LVM's metadata and its answer disagree. */
export class VolumeMissingError extends JobFailure {
  constructor(where: string) {
    super(
      'volume_missing',
      `lvcreate reported success but ${where} is not listed; check lvs and the LVM metadata`,
      {
        volume: where,
      },
    );
  }
}

/** A filesystem filled up: names the place and what to do. */
export class NoSpaceError extends JobFailure {
  constructor(where: string, doing: string) {
    super(
      'no_space',
      `no space left on the filesystem of ${where} while ${doing}; free space there and retry`,
      {
        directory: where,
      },
    );
  }
}
