import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { urlForLog } from '../storage/image-url';
import { jobLogFields, requestForLog, throughput, withoutUrlQueries } from './job-log';

describe('job log fields', () => {
  it('names the job, its correlation id (or null) and its volume (or null for a prefetch)', () => {
    const provision = { image_url: 's3://b/k', volume_name: 'vm-1', volume_size_gb: 1, image_type: 'qcow2' };
    assert.deepEqual(jobLogFields({ id: 'j1', request: { ...provision, correlation_id: 'c' } }), {
      job_id: 'j1',
      correlation_id: 'c',
      volume_name: 'vm-1',
    });
    assert.deepEqual(jobLogFields({ id: 'j2', request: { image_url: 's3://b/k' } }), {
      job_id: 'j2',
      correlation_id: null,
      volume_name: null,
    });
  });

  it('logs the request without credentials or query string', () => {
    const logged = requestForLog({
      image_url: 'https://host/img.qcow2?X-Amz-Signature=abc',
      checksum: 'sha256:' + 'a'.repeat(64),
      volume_name: 'vm',
      volume_size_gb: 2,
      image_type: 'qcow2',
    });
    assert.deepEqual(logged, {
      kind: 'provision',
      image_url: 'https://host/img.qcow2?…',
      volume_size_gb: 2,
      image_type: 'qcow2',
      checksum_given: true,
    });
  });

  it('computes throughput, or null when the time is too short to tell', () => {
    assert.equal(throughput(1000, 2), 500);
    assert.equal(throughput(1000, 0), null);
  });
});

describe('URLs in log lines', () => {
  it('drops user, password, query and fragment', () => {
    assert.equal(urlForLog('https://u:p@h:8080/a/b.img?sig=1#x'), 'https://h:8080/a/b.img?…');
    assert.equal(urlForLog('s3://bucket/key.qcow2'), 's3://bucket/key.qcow2');
    assert.equal(urlForLog('not a url'), '<not a URL>');
  });

  it('cuts the query off every http(s) URL inside a message', () => {
    assert.equal(
      withoutUrlQueries('GET https://h/x.img?sig=secret failed; see http://h2/y?z=1.'),
      'GET https://h/x.img?… failed; see http://h2/y?….',
    );
    assert.equal(withoutUrlQueries('no url here?'), 'no url here?');
  });
});
