import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { NAME, SERVICE, SOCKET, listening, lvNames, must, notInHostGuest, unitState } from './host-stack';

// In the host guest, last (after host.hostspec.ts and libvirt.hostspec.ts): what apt remove and
// apt purge leave, as docs/installation.md says.
describe('apt remove, then apt purge', { skip: notInHostGuest }, () => {
  it('remove stops the units and removes the program; state and configuration stay', async () => {
    must('apt-get', 'remove', '-y', '-q', NAME);
    assert.equal(unitState(SOCKET), 'inactive');
    assert.equal(unitState(SERVICE), 'inactive');
    assert.equal(await listening(), false, 'nothing listens on 127.0.0.1:8080');
    assert.ok(!existsSync(`/usr/lib/${NAME}`), 'the program is gone');
    for (const kept of [`/var/lib/${NAME}/provisioner.db`, `/etc/default/${NAME}`, `/etc/${NAME}/tokens`]) {
      assert.ok(existsSync(kept), `${kept} is kept by remove`);
    }
  });

  it('purge removes state and configuration; the LVs are never touched', () => {
    const before = lvNames();
    must('apt-get', 'purge', '-y', '-q', NAME);
    for (const gone of [`/var/lib/${NAME}`, `/etc/default/${NAME}`, `/etc/${NAME}`]) {
      assert.ok(!existsSync(gone), `${gone} is removed by purge`);
    }
    assert.deepEqual(lvNames(), before);
    assert.ok(before.includes('vm-one') && before.includes('vm-ext4'), before.join(' '));
  });
});
