import { Injectable, Logger } from '@nestjs/common';
import { commandError, run } from '../common/exec';
import { Settings } from '../config/settings';

/**
 * Adapter over virsh: tells libvirt to rescan LIBVIRT_POOL so a new or rewritten volume shows
 * up at once. Optional and never fatal: the volume is fine either way.
 */
@Injectable()
export class Virsh {
  private readonly logger = new Logger(Virsh.name);

  constructor(private readonly settings: Settings) {}

  static poolRefreshArgs(pool: string): string[] {
    return ['--quiet', 'pool-refresh', pool];
  }

  async refreshPool(): Promise<void> {
    const pool = this.settings.libvirtPool;
    if (!pool) return;
    try {
      await run('virsh', Virsh.poolRefreshArgs(pool), { timeoutMs: 30_000 });
    } catch (error) {
      this.logger.warn({
        pool,
        error: commandError('virsh pool-refresh', error).message,
        msg: 'libvirt pool refresh failed',
      });
    }
  }
}
