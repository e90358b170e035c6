import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ImageServer } from '../harness/image-server';
import { VM_FIXTURES } from '../fixtures/images';
import {
  LIBVIRT_POOL,
  lvNames,
  restartWith,
  SERVICE,
  VG,
  jobReaches,
  must,
  notInHostGuest,
  provision,
  provisionCompleted,
  run,
  since,
} from './host-stack';

// In the host guest, after host.hostspec.ts (daemon installed and configured with LIBVIRT_POOL, a
// `logical` libvirt pool on the VG): libvirtd for real, a running TCG domain holding an LV, and
// a provisioned filesystem that the guest grows and mounts.
const GIB = 1024 ** 3;
const DOMAIN = 'lvp-holder';

function domainXml(device: string): string {
  // A domain with no OS: SeaBIOS finds nothing to boot and waits. It holds its disk open all the same.
  return `<domain type='qemu'>
  <name>${DOMAIN}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='block' device='disk'>
      <driver name='qemu' type='raw' cache='none'/>
      <source dev='${device}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

describe('libvirt for real: a logical pool, a running domain', { skip: notInHostGuest }, () => {
  let images: ImageServer;

  before(async () => {
    images = await new ImageServer(VM_FIXTURES).start();
  });
  after(async () => {
    run('virsh', 'destroy', DOMAIN);
    run('virsh', 'undefine', DOMAIN);
    await images?.stop();
  });

  it('a running domain on the LV makes a provision to it refuse 409 volume_in_use; after destroy, accepted', async () => {
    const body = {
      image_url: `${images.url}/small.qcow2`,
      volume_name: 'vm-libvirt',
      volume_size_gb: 2,
      image_type: 'qcow2',
    };
    await provisionCompleted(body);
    const xml = '/tmp/lvp-holder.xml';
    writeFileSync(xml, domainXml(`/dev/${VG}/vm-libvirt`));
    must('virsh', 'define', xml);
    const t0 = performance.now();
    must('virsh', 'start', DOMAIN);
    console.log(`# virsh start (TCG in TCG): ${since(t0)}`);
    assert.match(must('virsh', 'domstate', DOMAIN), /running/);
    const refused = await provision(body);
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    const answer = refused.body as unknown as { error_code: string; message: string };
    assert.equal(answer.error_code, 'volume_in_use');
    assert.match(answer.message, /qemu|open/i, answer.message);
    must('virsh', 'destroy', DOMAIN);
    await provisionCompleted(body);
  });

  it('an ext4 image provisioned into a larger thin LV grows and mounts with its files intact', async () => {
    const created = await provision({
      image_url: `${images.url}/ext4.qcow2`,
      volume_name: 'vm-ext4',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    const done = await jobReaches(created.body.job_id, ['completed', 'failed']);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const device = `/dev/${VG}/vm-ext4`;
    must('e2fsck', '-f', '-y', device);
    must('resize2fs', device);
    const dump = must('dumpe2fs', '-h', device);
    const blocks = Number(/^Block count:\s+(\d+)/m.exec(dump)?.[1]);
    const blockSize = Number(/^Block size:\s+(\d+)/m.exec(dump)?.[1]);
    assert.equal(blocks * blockSize, GIB, 'the filesystem fills the 1 GiB LV');
    const mnt = '/mnt/vm-ext4';
    mkdirSync(mnt, { recursive: true });
    must('mount', device, mnt);
    try {
      const tree = join(VM_FIXTURES, 'ext4-tree');
      for (const name of ['hello.txt', 'random.bin', 'etc/hostname']) {
        assert.ok(readFileSync(join(mnt, name)).equals(readFileSync(join(tree, name))), `${name} differs`);
      }
      assert.ok(readdirSync(mnt).includes('lost+found'));
    } finally {
      must('umount', mnt);
    }
  });

  // libvirt's `logical` pool reads `lvs`, and its pattern (storage_backend_logical.c) wants a `devices`
  // field, which a thin LV has empty (seen in this guest: `vm-one##<uuid>##thin#0#…#Vwi-a-tz--`), so
  // thin LVs never show in vol-list. The refresh is checked with a thick LV: the daemon runs with
  // VOLUME_BACKEND=lvm from this case on: it is the last one that provisions (remove.hostspec.ts
  // only removes the package), so no restart back to lvm-thin (a daemon start is minutes under TCG).
  it('a thick LV is in virsh vol-list with its capacity as soon as the job completes (thin LVs never are)', async () => {
    await restartWith({ VOLUME_BACKEND: 'lvm' });
    await provisionCompleted({
      image_url: `${images.url}/small.qcow2`,
      volume_name: 'vm-thick',
      volume_size_gb: 1,
      image_type: 'qcow2',
    });
    // No pool-refresh here: the daemon's refresh (LIBVIRT_POOL) is what makes libvirt see it.
    const list = must('virsh', '-q', 'vol-list', LIBVIRT_POOL);
    if (!/^\s*vm-thick\s/m.test(list)) {
      // What the daemon said about its refresh (a failed one is a warning in the job's log), and
      // whether a refresh by hand shows it.
      const journal = must('journalctl', '-u', SERVICE, '-o', 'cat', '--no-pager');
      const lines = journal.split('\n').filter((l) => /refresh|virsh/i.test(l));
      must('virsh', '-q', 'pool-refresh', LIBVIRT_POOL);
      const after = must('virsh', '-q', 'vol-list', LIBVIRT_POOL);
      // What libvirt parses (its own lvs command line) and what it thinks of the pool.
      const lvs = run(
        'lvs',
        '--separator',
        '#',
        '--noheadings',
        '--units',
        'b',
        '--unbuffered',
        '--nosuffix',
        '--options',
        'lv_name,origin,uuid,devices,segtype,stripes,seg_size,vg_extent_size,size,lv_attr',
        VG,
      ).out;
      const pool = run('virsh', 'pool-dumpxml', LIBVIRT_POOL).out;
      const libvirtd = run('journalctl', '-u', 'libvirtd', '-n', '30', '--no-pager', '-o', 'cat').out;
      assert.fail(
        `vm-thick is not in vol-list ${JSON.stringify(list)} (after a refresh by hand: ` +
          `${JSON.stringify(after)}); the daemon's log:\n${lines.join('\n')}\nlvs as libvirt runs it:\n${lvs}\n` +
          `pool:\n${pool}\nlibvirtd's journal:\n${libvirtd}`,
      );
    }
    const info = must('virsh', 'vol-info', '--bytes', '--pool', LIBVIRT_POOL, 'vm-thick');
    assert.match(info, new RegExp(`Capacity:\\s+${GIB} bytes`), info);
    // The limitation the docs state: the thin LVs made before are in the VG, not in the pool.
    assert.ok(lvNames().includes('vm-one'));
    assert.doesNotMatch(
      list,
      /^\s*vm-one\s/m,
      'libvirt now lists thin LVs: update docs/operations.md and this case',
    );
  });
});
