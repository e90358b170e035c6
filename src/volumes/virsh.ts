import { Injectable } from '@nestjs/common';
import { commandError, run } from '../common/exec';
import { Settings } from '../config/settings';

/**
 * Adapter over virsh: tells libvirt to rescan LIBVIRT_POOL so a new or rewritten volume shows
 * up at once. Optional and never fatal: the volume is fine either way.
 */
@Injectable()
export class Virsh {
  constructor(private readonly settings: Settings) {}

  static poolRefreshArgs(pool: string): string[] {
    return ['--quiet', 'pool-refresh', pool];
  }

  /**
   * Rescans LIBVIRT_POOL when one is configured. Resolves with what went wrong (for the job's log),
   * or undefined when it worked or there is no pool to refresh; never rejects.
   */
  async refreshPool(): Promise<{ pool: string; error: string } | undefined> {
    const pool = this.settings.volumes.libvirtPool;
    if (!pool) return undefined;
    try {
      await run('virsh', Virsh.poolRefreshArgs(pool), { timeoutMs: 30_000 });
      return undefined;
    } catch (error) {
      return { pool, error: commandError('virsh pool-refresh', error).message };
    }
  }
}
