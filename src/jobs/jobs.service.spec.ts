import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ProvisionRequest } from './job.model';
import { hashRequest } from './jobs.service';

const request: ProvisionRequest = {
  image_url: 's3://images/ubuntu-24.04.qcow2',
  volume_name: 'vm-101-disk-0',
  volume_size_gb: 20,
  image_type: 'qcow2',
};

describe('hashRequest: the fingerprint that tells a replayed Idempotency-Key from a reused one', () => {
  it('is a sha256 in hex', () => {
    assert.match(hashRequest(request), /^[0-9a-f]{64}$/);
  });

  it('is the same for the same fields given in another order', () => {
    const reordered: ProvisionRequest = {
      image_type: 'qcow2',
      volume_size_gb: 20,
      volume_name: 'vm-101-disk-0',
      image_url: 's3://images/ubuntu-24.04.qcow2',
    };
    assert.equal(hashRequest(reordered), hashRequest(request));
  });

  const changes: [string, Partial<ProvisionRequest>][] = [
    ['another image', { image_url: 's3://images/debian-12.qcow2' }],
    ['another volume', { volume_name: 'vm-102-disk-0' }],
    ['another size', { volume_size_gb: 21 }],
    ['the size as text', { volume_size_gb: '20' as unknown as number }],
    ['another image type', { image_type: 'raw' }],
    ['a correlation id added', { correlation_id: 'req-1' }],
    ['a checksum added', { checksum: `sha256:${'0'.repeat(64)}` }],
  ];
  for (const [what, change] of changes) {
    it(`changes with ${what}`, () => {
      assert.notEqual(hashRequest({ ...request, ...change }), hashRequest(request));
    });
  }

  it('tells values apart that only differ in where a field ends', () => {
    const a = hashRequest({ ...request, image_url: 'a', volume_name: 'bc' });
    const b = hashRequest({ ...request, image_url: 'ab', volume_name: 'c' });
    assert.notEqual(a, b);
  });
});
