import { messageOf } from '../common/errors';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { BASE_STORE, type BaseCatalog } from '../cache/base-store';
import { ImageCache } from '../cache/image-cache.service';
import { Settings } from '../config/settings';
import { VOLUME_BACKEND, type VolumeBackend } from '../volumes/volume-backend';
import { checkDirectory, DirectoryProblem } from './directory.probe';

/** Written and removed at once in CACHE_DIR/tmp, which start-up sweeps should a crash leave it. */
const CACHE_PROBE_FILE = '.readyz-probe';

/**
 * Extension point for volume backends that can tell their own readiness (the LVM backends: the
 * volume group, or thin pool, is there and has at least `minFreeBytes` free). Resolves with
 * details to show; throws an Error whose message names the problem. A backend opts in by having
 * this method; no change here is needed.
 */
export interface VolumeBackendReadiness {
  readiness(minFreeBytes: number): Promise<Record<string, unknown>>;
}

function canTellReadiness(backend: object): backend is VolumeBackendReadiness {
  return typeof (backend as Partial<VolumeBackendReadiness>).readiness === 'function';
}

/** Where images and volumes go: writable, with READY_MIN_FREE_BYTES free. */
@Injectable()
export class StorageIndicators {
  constructor(
    private readonly settings: Settings,
    private readonly cache: ImageCache,
    @Inject(VOLUME_BACKEND) private readonly backend: VolumeBackend,
    private readonly indicators: HealthIndicatorService,
    @Inject(BASE_STORE) private readonly bases: BaseCatalog,
  ) {}

  /** Downloads land in CACHE_DIR/tmp and are renamed into CACHE_DIR/sha256 (one filesystem). */
  async cacheDir() {
    const session = this.indicators.check('cache_dir');
    try {
      return session.up({
        ...(await checkDirectory(this.cache.tmpDir, this.settings.ready.minFreeBytes, CACHE_PROBE_FILE)),
      });
    } catch (error) {
      return session.down({ ...describe(error) });
    }
  }

  /**
   * `file`: VOLUME_DIR; LVM backends: whatever their readiness() reports (see VolumeBackendReadiness),
   * and whether new volumes are clones of golden bases (`clone_from_base`).
   */
  async volumes() {
    if (this.backend.kind === 'file') return this.volumeDir();
    const session = this.indicators.check('volume_group');
    if (!canTellReadiness(this.backend)) {
      return session.up({
        backend: this.backend.kind,
        message: 'checked at start only: this backend has no readiness() yet',
        clone_from_base: await this.bases.support(),
      });
    }
    try {
      return session.up({
        backend: this.backend.kind,
        ...(await this.backend.readiness(this.settings.ready.minFreeBytes)),
        // lvm-thin: thin-snapshot clones of golden bases; thick lvm: why it converts.
        clone_from_base: await this.bases.support(),
      });
    } catch (error) {
      return session.down({ backend: this.backend.kind, message: messageOf(error) });
    }
  }

  /**
   * No probe file here: a libvirt `dir` pool lists every file of VOLUME_DIR as a volume, so
   * access(W_OK) is asked instead. The directory is made if missing, as the backend would.
   * `clone_from_base` says whether new volumes are reflink clones of golden bases, or why they are
   * converted (the one reflink probe per VOLUME_DIR, made once and removed at once).
   */
  private async volumeDir() {
    const session = this.indicators.check('volume_dir');
    const dir = resolve(this.settings.volumes.dir);
    try {
      await mkdir(dir, { recursive: true });
      const checked = await checkDirectory(dir, this.settings.ready.minFreeBytes);
      return session.up({ ...checked, clone_from_base: await this.bases.support() });
    } catch (error) {
      return session.down({ path: dir, ...describe(error) });
    }
  }
}

function describe(error: unknown): Record<string, unknown> {
  if (error instanceof DirectoryProblem) return { ...error.details, message: error.message };
  return { message: messageOf(error) };
}
