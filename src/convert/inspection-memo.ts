import { Injectable } from '@nestjs/common';
import type { CheckResult, ImageInfo } from './qemu-img';

/** What qemu-img said about one cached file that passed: `info`, and `check` for a qcow2. */
export interface QemuImgVerdict {
  info: ImageInfo;
  check?: CheckResult;
}

/** Which bytes a verdict is about: the image's sha256, the file read (the cache's copy, its
 * expanded or unpacked form) and the format qemu-img was pinned to. */
export interface VerdictKey {
  sha256: string;
  path: string;
  format: string;
}

/** Enough for every image a host keeps warm; the oldest verdict goes first. */
const MAX_VERDICTS = 1024;

/**
 * The verdicts of `qemu-img info` and `check` on cached images, kept in memory. The bytes under a
 * verified sha256 never change, so a warm job (a clone of a golden base, or a second conversion)
 * need not start the two qemu-img processes again: ~0.1 s of a clone's ~0.2 s. Our own header
 * reading and every rule that depends on the request (declared format, volume size) still run on
 * each job; only qemu-img's findings are remembered, and only ones that passed. A restart, or a
 * change of the INSPECT_* limits (which needs one), starts with none.
 */
@Injectable()
export class InspectionMemo {
  private readonly verdicts = new Map<string, QemuImgVerdict>();

  recall(key: VerdictKey): QemuImgVerdict | undefined {
    const id = keyOf(key);
    const verdict = this.verdicts.get(id);
    if (verdict) {
      // Most recently used last: the first entry is the one to forget.
      this.verdicts.delete(id);
      this.verdicts.set(id, verdict);
    }
    return verdict;
  }

  remember(key: VerdictKey, verdict: QemuImgVerdict): void {
    const id = keyOf(key);
    this.verdicts.delete(id);
    this.verdicts.set(id, verdict);
    if (this.verdicts.size > MAX_VERDICTS) this.verdicts.delete(this.verdicts.keys().next().value!);
  }

  get size(): number {
    return this.verdicts.size;
  }
}

function keyOf({ sha256, path, format }: VerdictKey): string {
  return `${sha256}\0${path}\0${format}`;
}
