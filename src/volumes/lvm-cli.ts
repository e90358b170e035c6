import { Injectable } from '@nestjs/common';
import { commandError, run } from '../common/exec';

/** One LV as `lvs` reports it. */
export interface LvInfo {
  name: string;
  sizeBytes: number;
  /** lv_attr, e.g. `-wi-ao----`: [0] type (V = thin volume, t = thin pool), [5] 'o' = open. */
  attr: string;
  tags: string[];
  path: string;
  /** Thin pools and thin LVs: share of data blocks in use, 0-100. */
  dataPercent?: number;
  /** Thin pools: share of metadata blocks in use, 0-100. */
  metadataPercent?: number;
}

export interface VgInfo {
  name: string;
  sizeBytes: number;
  freeBytes: number;
}

const LV_FIELDS = 'lv_name,lv_size,lv_attr,lv_tags,lv_path,data_percent,metadata_percent';

/**
 * Adapter over the lvm2 tools (lvs, vgs, lvcreate, lvremove). Argument arrays only; sizes in
 * bytes; JSON reports. A failing command becomes a domain error carrying its stderr.
 */
@Injectable()
export class LvmCli {
  async vg(vg: string): Promise<VgInfo | undefined> {
    const report = await this.report('vgs', ['-o', 'vg_name,vg_size,vg_free', vg], 'vg', true);
    const row = report[0];
    if (!row) return undefined;
    return { name: row.vg_name, sizeBytes: Number(row.vg_size), freeBytes: Number(row.vg_free) };
  }

  async lvs(vg: string): Promise<LvInfo[]> {
    const rows = await this.report('lvs', ['-o', LV_FIELDS, vg], 'lv');
    return rows.map((row) => ({
      name: row.lv_name,
      sizeBytes: Number(row.lv_size),
      attr: row.lv_attr,
      tags: row.lv_tags ? row.lv_tags.split(',') : [],
      path: row.lv_path,
      dataPercent: percent(row.data_percent),
      metadataPercent: percent(row.metadata_percent),
    }));
  }

  async createThick(vg: string, name: string, sizeBytes: number, tag: string): Promise<void> {
    await this.exec('lvcreate', [...lvcreateArgs(name, tag), '-L', `${sizeBytes}b`, vg]);
  }

  async createThin(vg: string, pool: string, name: string, sizeBytes: number, tag: string): Promise<void> {
    await this.exec('lvcreate', [
      ...lvcreateArgs(name, tag),
      '-V',
      `${sizeBytes}b`,
      '--thinpool',
      `${vg}/${pool}`,
    ]);
  }

  /**
   * A thin snapshot of a thin LV (`lvcreate -s` without a size): it shares every block of the
   * origin and is an independent thin LV from then on (removing the origin leaves it whole).
   */
  async snapshotThin(vg: string, origin: string, name: string, tags: string[]): Promise<void> {
    await this.exec('lvcreate', thinSnapshotArgs(vg, origin, name, tags));
  }

  /** Grows an LV to `sizeBytes` (`lvextend`; a thin LV reads zeros in the new range). */
  async extend(vg: string, name: string, sizeBytes: number): Promise<void> {
    await this.exec('lvextend', ['-L', `${sizeBytes}b`, `${vg}/${name}`]);
  }

  /** Shrinks an LV to `sizeBytes` (`lvreduce --yes`: what lay past it is gone). */
  async reduce(vg: string, name: string, sizeBytes: number): Promise<void> {
    await this.exec('lvreduce', ['--yes', '-L', `${sizeBytes}b`, `${vg}/${name}`]);
  }

  /** Makes an LV read-only (`lvchange -p r`): its device refuses writes from then on. */
  async setReadOnly(vg: string, name: string): Promise<void> {
    await this.exec('lvchange', ['-p', 'r', `${vg}/${name}`]);
  }

  /** Adds and removes tags in one metadata update (`lvchange --addtag/--deltag`). */
  async retag(vg: string, name: string, change: { add: string[]; del: string[] }): Promise<void> {
    await this.exec('lvchange', [
      ...change.del.flatMap((t) => ['--deltag', t]),
      ...change.add.flatMap((t) => ['--addtag', t]),
      `${vg}/${name}`,
    ]);
  }

  async remove(vg: string, name: string): Promise<void> {
    await this.exec('lvremove', ['--yes', `${vg}/${name}`]);
  }

  private async exec(program: string, args: string[]): Promise<string> {
    try {
      const { stdout } = await run(program, args, { timeoutMs: 120_000 });
      return stdout;
    } catch (error) {
      throw commandError(program, error);
    }
  }

  /** Runs an lvm reporting command with JSON output and returns the rows of `section`. */
  private async report(
    program: string,
    args: string[],
    section: 'lv' | 'vg',
    missingIsEmpty = false,
  ): Promise<Record<string, string>[]> {
    let stdout: string;
    try {
      ({ stdout } = await run(program, ['--reportformat', 'json', '--units', 'b', '--nosuffix', ...args], {
        timeoutMs: 60_000,
      }));
    } catch (error) {
      const stderr = String((error as { stderr?: string }).stderr ?? '');
      if (missingIsEmpty && /not found|Cannot process volume group/i.test(stderr)) return [];
      throw commandError(program, error);
    }
    const parsed = JSON.parse(stdout) as { report: Record<string, Record<string, string>[]>[] };
    return parsed.report.flatMap((part) => part[section] ?? []);
  }
}

/**
 * What every lvcreate of ours says: no questions (`--yes`, we run without a terminal), old
 * filesystem or RAID signatures on the new extents wiped (`--wipesignatures y`: udev would
 * otherwise see a stale filesystem on a fresh volume), and our tag, which is what lets us remove it later.
 */
export function lvcreateArgs(name: string, tag: string): string[] {
  return ['--yes', '--wipesignatures', 'y', '--addtag', tag, '-n', name];
}

/**
 * A thin snapshot: no size (with `-L` it would be an old-style COW snapshot), `-kn` so it carries
 * no activation-skip flag and is activated now and at every boot like any volume (lvcreate
 * activates it: `-ay`, the default, spelled out). No `--wipesignatures`: its content is the point.
 */
export function thinSnapshotArgs(vg: string, origin: string, name: string, tags: string[]): string[] {
  return [
    '--yes',
    '-s',
    '-kn',
    '-ay',
    ...tags.flatMap((t) => ['--addtag', t]),
    '-n',
    name,
    `${vg}/${origin}`,
  ];
}

function percent(value: string | undefined): number | undefined {
  return value === '' || value === undefined ? undefined : Number(value);
}
