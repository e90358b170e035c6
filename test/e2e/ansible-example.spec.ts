import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { httpBed } from '../harness/http-bed';
import { repoRoot } from '../harness/repo';
import { waitFor } from '../harness/wait';
import { rawReference, sameBytes, slowQcow2, smallQcow2, smallRaw } from '../fixtures/images';

const PLAYBOOK = join(repoRoot(), 'examples/ansible/provision-volume.yml');
const TOKEN = 'tok-ansible-0123456789abcdef';
const GIB = 1024 ** 3;
const hasAnsible = spawnSync('ansible-playbook', ['--version']).status === 0;

interface Run {
  code: number;
  output: string;
  recap: { ok: number; changed: number; failed: number };
}

/**
 * examples/ansible/provision-volume.yml, run by Debian's ansible-core as an operator would, against
 * the real daemon (token auth on) and a real image server on 127.0.0.1.
 */
describe(
  'the Ansible example playbook against the real daemon',
  {
    skip:
      !hasAnsible &&
      'ansible-playbook is not installed (scripts/install-system-packages.sh installs ansible-core)',
  },
  () => {
    const env: Record<string, string> = {};
    const bed = httpBed(
      'ansible',
      { 'small.qcow2': smallQcow2, 'small.raw': smallRaw, 'slow.qcow2': slowQcow2 },
      env,
    );
    // The bed reads env when its before() starts the daemon: the token file exists by then.
    env.API_TOKENS_FILE = join(bed.work.dir, 'tokens');
    writeFileSync(env.API_TOKENS_FILE, `ansible:${TOKEN}\n`, { mode: 0o600 });
    const home = join(bed.work.dir, 'ansible-home');
    const auth = { authorization: `Bearer ${TOKEN}` };

    before(() => {
      mkdirSync(home);
      writeFileSync(join(home, 'ansible.cfg'), '');
    });

    /** ansible-playbook with the vars as a JSON file (-e @file), no shell, in a scratch folder. */
    const play = (vars: Record<string, unknown>) =>
      new Promise<Run>((resolve, reject) => {
        const varsFile = join(bed.work.dir, `vars-${Date.now()}-${Math.random().toString(16).slice(2)}.json`);
        writeFileSync(
          varsFile,
          JSON.stringify({
            lvp_hosts: 'localhost',
            lvp_url: bed.daemon.url,
            lvp_token: TOKEN,
            lvp_poll_delay: 1,
            ...vars,
          }),
        );
        execFile(
          'ansible-playbook',
          ['-i', 'localhost,', '-c', 'local', '-e', `@${varsFile}`, PLAYBOOK],
          {
            cwd: bed.work.dir,
            timeout: 120_000,
            env: {
              PATH: process.env.PATH,
              HOME: home,
              ANSIBLE_HOME: home,
              ANSIBLE_LOCAL_TEMP: join(home, 'tmp'),
              ANSIBLE_NOCOLOR: '1',
              ANSIBLE_PYTHON_INTERPRETER: 'auto_silent',
              ANSIBLE_CONFIG: join(home, 'ansible.cfg'), // empty: no host's or user's settings
            },
          },
          (error, stdout, stderr) => {
            const output = `${stdout}${stderr}`;
            const line = output.split('\n').find((l) => /^localhost\s+: ok=/.test(l));
            if (!line) return reject(new Error(`no PLAY RECAP for localhost in:\n${output}`));
            const count = (name: string) => Number(new RegExp(`${name}=(\\d+)`).exec(line)![1]);
            resolve({
              code: error ? Number((error as { code?: number }).code ?? 1) : 0,
              output,
              recap: { ok: count('ok'), changed: count('changed'), failed: count('failed') },
            });
          },
        );
      });
    const jobsOf = async (volume: string) =>
      (await bed.daemon.request('GET', `/api/v1/jobs?volume=${volume}`, undefined, auth)).body;

    it('first run provisions byte-exact and reports changed; a re-run replays the job and reports unchanged', async () => {
      const vars = {
        image_url: bed.url('small.qcow2'),
        volume_name: 'vm-ansible-1',
        volume_size_gb: 1,
        image_type: 'qcow2',
      };
      const first = await play(vars);
      assert.equal(first.code, 0, first.output);
      assert.ok(first.recap.changed >= 1, first.output);
      assert.equal(first.recap.failed, 0, first.output);
      assert.ok(!first.output.includes(TOKEN), 'the API token appears in the play output');
      const listed = await jobsOf('vm-ansible-1');
      assert.equal(listed.total, 1);
      const job = listed.jobs[0];
      assert.equal(job.status, 'completed');
      assert.match(first.output, new RegExp(`job ${job.job_id} completed: 100 %`));

      const volume = join(bed.volumes, 'vm-ansible-1.raw');
      const reference = rawReference(join(bed.www, 'small.qcow2'), 'qcow2', bed.work.dir);
      truncateSync(reference, 1 * GIB);
      assert.ok(sameBytes(volume, reference), 'volume differs from qemu-img convert -O raw of the image');

      const second = await play(vars);
      assert.equal(second.code, 0, second.output);
      assert.equal(second.recap.changed, 0, second.output);
      assert.match(second.output, /replayed \(Idempotency-Key vm-ansible-1-[0-9a-f]{40}\)/);
      const again = await jobsOf('vm-ansible-1');
      assert.equal(again.total, 1, 'the re-run started a second job');
      assert.equal(again.jobs[0].job_id, job.job_id);
    });

    it('fails the play with the daemon message when the job fails (a raw file submitted as qcow2)', async () => {
      const run = await play({
        image_url: bed.url('small.raw'),
        volume_name: 'vm-ansible-bad',
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      assert.notEqual(run.code, 0, run.output);
      assert.equal(run.recap.failed, 1, run.output);
      const { jobs } = await jobsOf('vm-ansible-bad');
      assert.equal(jobs[0].status, 'failed');
      assert.ok(jobs[0].error, 'the job has no error message');
      assert.ok(
        run.output.includes(jobs[0].error),
        `the daemon's message "${jobs[0].error}" is not in:\n${run.output}`,
      );
      assert.ok(run.output.includes(`(${jobs[0].error_code})`), run.output);
    });

    it('fails the play with the daemon message when the daemon refuses the request', async () => {
      const run = await play({
        image_url: 'ftp://images.example/x.qcow2',
        volume_name: 'vm-ansible-refused',
        volume_size_gb: 1,
        image_type: 'qcow2',
      });
      assert.notEqual(run.code, 0, run.output);
      assert.match(run.output, /refused the job \(HTTP 400 validation_failed\)/);
      assert.match(run.output, /unsupported scheme/);
    });

    it('stops waiting and fails the play when the job is cancelled (the original example polled forever)', async () => {
      copyFileSync(join(bed.www, 'slow.qcow2'), join(bed.www, 'slow-cancel.qcow2'));
      const running = play({
        image_url: bed.url('slow-cancel.qcow2'),
        volume_name: 'vm-ansible-cancel',
        volume_size_gb: 2,
        image_type: 'qcow2',
      });
      const job = await waitFor(
        'the playbook job to run',
        async () => {
          const { jobs } = await jobsOf('vm-ansible-cancel');
          return jobs?.[0]?.status === 'running' ? jobs[0] : undefined;
        },
        60_000,
        100,
      );
      const cancel = await bed.daemon.request('DELETE', `/api/v1/cancel/${job.job_id}`, undefined, auth);
      assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
      const run = await running;
      assert.notEqual(run.code, 0, run.output);
      assert.equal(run.recap.failed, 1, run.output);
      assert.match(run.output, new RegExp(`job ${job.job_id} cancelled \\(job_cancelled\\)`));
      assert.ok(run.output.includes(cancel.body.error), run.output);
    });
  },
);
