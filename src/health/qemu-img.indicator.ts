import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { QemuImg } from '../convert/qemu-img';

/** qemu-img does not change under a running daemon often: one run per this period is plenty. */
const CACHE_MS = 30_000;
const TIMEOUT_MS = 5_000;

/** qemu-img runs (`qemu-img --version`); the result is cached for 30 s. */
@Injectable()
export class QemuImgIndicator {
  constructor(
    private readonly indicators: HealthIndicatorService,
    private readonly qemuImg: QemuImg,
  ) {}

  check() {
    return this.indicators
      .check('qemu_img')
      .attempt(async ({ signal }) => ({
        version: await this.qemuImg.version({ signal, timeoutMs: TIMEOUT_MS }),
      }))
      .withTimeout(TIMEOUT_MS)
      .cacheFor(CACHE_MS);
  }
}
