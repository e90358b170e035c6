import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { imageUrlProblem } from './image-url';

const SCHEMES = ['http', 'https', 's3'];

describe('imageUrlProblem: whether an image URL can be used', () => {
  describe('accepts', () => {
    const ok = [
      'http://images.example/ubuntu.qcow2',
      'https://images.example:8443/path/to/ubuntu.qcow2?version=2',
      'https://minio.local:9000/bucket/key.qcow2',
      's3://images/ubuntu-24.04.qcow2',
      'HTTPS://Images.Example/upper-case-scheme.qcow2',
      'http://10.0.0.5/image.raw',
      'http://[::1]:8080/image.raw',
    ];
    for (const url of ok) {
      it(url, () => assert.equal(imageUrlProblem(url, SCHEMES), undefined));
    }
  });

  describe('refuses', () => {
    const bad: [string, string, string][] = [
      ['text that is not a URL', 'not a url', 'is not a valid URL'],
      ['a path without a scheme', '/images/ubuntu.qcow2', 'is not a valid URL'],
      ['an empty string', '', 'is not a valid URL'],
      ['an s3 URL without a bucket', 's3:///key.qcow2', 'has no host'],
      [
        'a user and password in the URL',
        'https://user:secret@images.example/a.qcow2',
        'must not carry credentials; configure them on the daemon instead',
      ],
      [
        'a user name alone in the URL',
        'https://user@images.example/a.qcow2',
        'must not carry credentials; configure them on the daemon instead',
      ],
      [
        'S3 keys in an s3 URL',
        's3://AKIA:secret@bucket/a.qcow2',
        'must not carry credentials; configure them on the daemon instead',
      ],
    ];
    for (const [what, url, problem] of bad) {
      it(`${what}: ${problem}`, () => assert.equal(imageUrlProblem(url, SCHEMES), problem));
    }
  });

  describe('names an unsupported scheme and lists the supported ones', () => {
    const cases: [string, string][] = [
      ['ftp://images.example/a.qcow2', 'ftp'],
      ['file:///var/lib/images/a.qcow2', 'file'],
      ['gs://bucket/a.qcow2', 'gs'],
    ];
    for (const [url, scheme] of cases) {
      it(`${scheme}:`, () => {
        assert.equal(
          imageUrlProblem(url, SCHEMES),
          `uses the unsupported scheme "${scheme}:" (supported: http://, https://, s3://)`,
        );
      });
    }

    it('s3: when only http and https are served (no MINIO_ENDPOINT)', () => {
      assert.equal(
        imageUrlProblem('s3://images/a.qcow2', ['http', 'https']),
        'uses the unsupported scheme "s3:" (supported: http://, https://)',
      );
    });
  });
});
