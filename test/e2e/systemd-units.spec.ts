import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../harness/repo';
import { makeWorkdir } from '../harness/workdir';

const UNITS = join(repoRoot(), 'systemd');

describe('systemd units', () => {
  it('pass systemd-analyze verify (service and socket)', () => {
    const work = makeWorkdir('units');
    try {
      // verify checks that ExecStart exists: point it at a stand-in in the scratch folder.
      const bin = join(work.dir, 'bin', 'libvirt-volume-provisioner');
      mkdirSync(join(work.dir, 'bin'));
      writeFileSync(bin, '#!/bin/sh\n');
      chmodSync(bin, 0o755);
      const service = readFileSync(join(UNITS, 'libvirt-volume-provisioner.service'), 'utf8').replace(
        'ExecStart=/usr/bin/libvirt-volume-provisioner',
        `ExecStart=${bin}`,
      );
      writeFileSync(join(work.dir, 'libvirt-volume-provisioner.service'), service);
      writeFileSync(
        join(work.dir, 'libvirt-volume-provisioner.socket'),
        readFileSync(join(UNITS, 'libvirt-volume-provisioner.socket')),
      );
      const result = spawnSync(
        'systemd-analyze',
        [
          'verify',
          join(work.dir, 'libvirt-volume-provisioner.socket'),
          join(work.dir, 'libvirt-volume-provisioner.service'),
        ],
        { encoding: 'utf8' },
      );
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stderr.trim(), '', result.stderr);
    } finally {
      work.cleanup();
    }
  });

  it('reload with SIGHUP and listen on loopback by default', () => {
    const service = readFileSync(join(UNITS, 'libvirt-volume-provisioner.service'), 'utf8');
    assert.match(service, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    assert.match(
      readFileSync(join(UNITS, 'libvirt-volume-provisioner.socket'), 'utf8'),
      /^ListenStream=127\.0\.0\.1:8080$/m,
    );
  });
});
