import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WRITE_STAGES } from '../harness/daemon';
import { ImageServer } from '../harness/image-server';
import { repoRoot } from '../harness/repo';
import { waitFor } from '../harness/wait';
import { VM_FIXTURES } from '../fixtures/images';
import {
  DEB,
  TOKENS_FILE,
  currentToken,
  FIRST_TOKEN,
  api,
  LIBVIRT_POOL,
  NAME,
  SERVICE,
  SOCKET,
  THIN_POOL,
  VG,
  job,
  jobReaches,
  listening,
  lvNames,
  mainPid,
  must,
  mustIn,
  notInHostGuest,
  provision,
  provisionCompleted,
  run,
  since,
  unitState,
} from './host-stack';

// In the host guest (see host-stack.ts): the .deb installed with apt, socket activation, jobs
// across systemctl reload/stop/restart, the journal, the hardening score.
describe('the .deb under systemd as PID 1', { skip: notInHostGuest }, () => {
  let images: ImageServer;

  before(async () => {
    images = await new ImageServer(VM_FIXTURES).start();
  });
  after(() => images?.stop());

  it('apt installs the .deb from the local file; the socket is enabled and nothing is started', () => {
    // As docs/installation.md says: `apt-get install ./<file>.deb`. Every dependency is in the
    // image already and the guest has no network, so apt installs from the file alone.
    const file = basename(DEB);
    copyFileSync(DEB, join('/root', file));
    const t0 = performance.now();
    const out = mustIn('/root', 'apt-get', 'install', '-y', '-q', '--no-install-recommends', `./${file}`);
    console.log(`# apt-get install ./${file}: ${since(t0)}`);
    assert.match(out, /^0 upgraded, 1 newly installed/m, 'only the package itself is installed');
    assert.equal(run('systemctl', 'is-enabled', SOCKET).out.trim(), 'enabled');
    assert.equal(unitState(SOCKET), 'inactive');
    assert.equal(unitState(SERVICE), 'inactive');
    assert.equal(run('pgrep', '-f', `/usr/lib/${NAME}/dist/src/main.js`).status, 1, 'no daemon process');
  });

  it('the first connection to the started socket starts the service, which answers it', async () => {
    assert.equal(await listening(), false, 'nothing listens before the socket is started');
    must('pvcreate', '-q', '/dev/vdb');
    must('vgcreate', '-q', VG, '/dev/vdb');
    // 6 of the disk's 8 GiB: the daemon wants a thin volume's full size free in the pool, and the
    // cases make five 1-2 GiB volumes.
    must('lvcreate', '-q', '--type', 'thin-pool', '-L', '6G', '-n', THIN_POOL, VG);
    // libvirt's view of the same VG (libvirt.hostspec.ts checks it).
    must(
      'virsh',
      '-q',
      'pool-define-as',
      LIBVIRT_POOL,
      'logical',
      '--source-name',
      VG,
      '--target',
      `/dev/${VG}`,
    );
    must('virsh', '-q', 'pool-start', LIBVIRT_POOL);
    const conf = `/etc/default/${NAME}`;
    const settings = [
      'VOLUME_BACKEND=lvm-thin',
      `LVM_VOLUME_GROUP=${VG}`,
      `LVM_THIN_POOL=${THIN_POOL}`,
      `LIBVIRT_POOL=${LIBVIRT_POOL}`,
      'SHUTDOWN_GRACE=1',
      // The specs serve their images from the guest's loopback; the default policy refuses it.
      'IMAGE_ALLOW_ADDRESSES=127.0.0.1/32',
      `API_TOKENS_FILE=${TOKENS_FILE}`,
    ];
    writeFileSync(TOKENS_FILE, `ops:${FIRST_TOKEN}\n`, { mode: 0o600 });
    writeFileSync(conf, `${readFileSync(conf, 'utf8')}\n${settings.join('\n')}\n`);
    must('systemctl', 'start', SOCKET);
    assert.equal(unitState(SOCKET), 'active');
    assert.equal(unitState(SERVICE), 'inactive', 'starting the socket does not start the service');
    const t0 = performance.now();
    const res = await fetch('http://127.0.0.1:8080/health', { signal: AbortSignal.timeout(300_000) }).catch(
      (error: unknown) => {
        // What systemd saw, for the report.
        console.log(run('systemctl', 'status', '--no-pager', SERVICE, SOCKET).out);
        console.log(run('journalctl', '-u', SERVICE, '-n', '40', '--no-pager').out);
        throw error;
      },
    );
    console.log(`# socket ready → first answer (the service starts under TCG): ${since(t0)}`);
    assert.equal(res.status, 200, await res.text());
    assert.equal(unitState(SERVICE), 'active');
  });

  it('provisions into a thin LV; the journal holds its JSON log lines', async () => {
    const done = await provisionCompleted({
      image_url: `${images.url}/small.qcow2`,
      volume_name: 'vm-one',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    assert.ok(lvNames().includes('vm-one'), lvNames().join(' '));
    const lines = must('journalctl', '-u', SERVICE, '-o', 'cat', '--no-pager').split('\n').filter(Boolean);
    const json = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as unknown);
    assert.ok(json.length > 0, `no JSON lines in the journal:\n${lines.slice(-10).join('\n')}`);
    assert.ok(
      json.some((l) => JSON.stringify(l).includes(done.job_id)),
      'the job is logged by id',
    );
  });

  it('systemctl reload (SIGHUP) re-reads the API tokens, keeps the process and a running job', async () => {
    let release!: () => void;
    images.holds.set('/small.raw', new Promise<void>((r) => (release = r)));
    const created = await provision({
      image_url: `${images.url}/small.raw`,
      volume_name: 'vm-reload',
      volume_size_gb: 1,
      image_type: 'raw',
    });
    const id = created.body.job_id;
    await jobReaches(id, ['running']);
    const pid = mainPid();
    const first = currentToken();
    const second = 'second-token-0123456789abcdef';
    writeFileSync(TOKENS_FILE, `ops:${second}\n`, { mode: 0o600 });
    must('systemctl', 'reload', SERVICE);
    await waitFor('the reload', () =>
      must('journalctl', '-u', SERVICE, '-o', 'cat', '--no-pager').includes('SIGHUP: reloaded API tokens'),
    );
    assert.equal(mainPid(), pid, 'the same process');
    assert.equal(
      (await api(`/jobs/${id}`, {}, first)).status,
      401,
      'the old token is refused after the reload',
    );
    assert.equal((await job(id)).status, 'running', 'the job goes on (asked with the new token)');
    release();
    images.holds.delete('/small.raw');
    assert.equal((await jobReaches(id, ['completed', 'failed'])).status, 'completed');
  });

  it('systemctl stop during a conversion ends the job, leaves no LV; restart keeps history', async () => {
    const before = await jobIds();
    const created = await provision({
      image_url: `${images.url}/slow.qcow2`,
      volume_name: 'vm-stop',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    const id = created.body.job_id;
    await jobReaches(id, [], 180_000, WRITE_STAGES);
    // Streamed (the default for a cold qcow2): the LV is made inside that stage, once the header is in.
    await waitFor('the job to make its LV', () => lvNames().includes('vm-stop'), 180_000);
    const t0 = performance.now();
    must('systemctl', 'stop', SERVICE);
    console.log(`# systemctl stop during a conversion: ${since(t0)}`);
    assert.equal(unitState(SERVICE), 'inactive');
    assert.ok(!lvNames().includes('vm-stop'), 'the rolled-back job removed its LV');
    assert.equal(run('pgrep', '-x', 'qemu-img').status, 1, 'no qemu-img left');
    must('systemctl', 'restart', SERVICE);
    // Type=exec: restart returns once the process runs, before it answers; a client's keep-alive
    // connection to the stopped process is closed. Ask until the new process answers.
    await waitFor(
      'the restarted service to answer',
      async () => (await api('/jobs?limit=1')).status === 200 || undefined,
    );
    const stopped = await job(id);
    assert.match(stopped.status, /^(cancelled|failed)$/, JSON.stringify(stopped));
    const after = await jobIds();
    assert.deepEqual(
      after.filter((j) => j !== id),
      before,
      'every earlier job is still listed after the restart',
    );
  });

  it('systemd-analyze security: the exposure is at or under the documented value', () => {
    const out = must('systemd-analyze', 'security', '--no-pager', SERVICE);
    const score = Number(/Overall exposure level for \S+: (\d+\.\d+)/.exec(out)?.[1]);
    const doc = readFileSync(join(repoRoot(), 'docs', 'operations.md'), 'utf8');
    const documented = Number(/exposure level of\s+at most \*\*(\d+\.\d+)\*\*/.exec(doc)?.[1]);
    console.log(`# systemd-analyze security ${SERVICE}: ${score} (documented: at most ${documented})`);
    assert.ok(Number.isFinite(score) && Number.isFinite(documented), `${score} / ${documented}`);
    assert.ok(score <= documented, `exposure ${score} > documented ${documented}`);
  });
});

async function jobIds(): Promise<string[]> {
  const { body } = await api<{ jobs: { job_id: string }[] }>('/jobs?limit=500');
  return body.jobs.map((j) => j.job_id);
}
