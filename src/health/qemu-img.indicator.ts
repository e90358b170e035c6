import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { commandError, run } from '../common/exec';

/** qemu-img does not change under a running daemon often: one run per this period is plenty. */
const CACHE_MS = 30_000;
const TIMEOUT_MS = 5_000;

/** qemu-img runs (`qemu-img --version`); the result is cached for 30 s. */
@Injectable()
export class QemuImgIndicator {
  constructor(private readonly indicators: HealthIndicatorService) {}

  check() {
    return this.indicators
      .check('qemu_img')
      .attempt(async ({ signal }) => {
        try {
          const { stdout } = await run('qemu-img', ['--version'], { signal, timeoutMs: TIMEOUT_MS });
          return { version: String(stdout).split('\n')[0].trim() };
        } catch (error) {
          throw commandError('qemu-img --version', error);
        }
      })
      .withTimeout(TIMEOUT_MS)
      .cacheFor(CACHE_MS);
  }
}
