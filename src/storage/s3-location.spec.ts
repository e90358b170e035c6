import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalizeEtag, parseEndpoint, s3Location, type S3Endpoint } from './s3-location';

describe('parseEndpoint: MINIO_ENDPOINT as host[:port] or http(s)://host[:port]', () => {
  const cases: [string, boolean, S3Endpoint][] = [
    ['minio:9000', false, { host: 'minio', port: 9000, useSSL: false }],
    ['minio:9000', true, { host: 'minio', port: 9000, useSSL: true }],
    ['minio', false, { host: 'minio', port: 80, useSSL: false }],
    ['minio', true, { host: 'minio', port: 443, useSSL: true }],
    ['http://minio', true, { host: 'minio', port: 80, useSSL: false }],
    ['https://minio', false, { host: 'minio', port: 443, useSSL: true }],
    ['https://minio:9443', false, { host: 'minio', port: 9443, useSSL: true }],
    ['HTTP://MinIO.Example:9000/', false, { host: 'minio.example', port: 9000, useSSL: false }],
    ['127.0.0.1:9000', false, { host: '127.0.0.1', port: 9000, useSSL: false }],
    ['[::1]:9000', false, { host: '[::1]', port: 9000, useSSL: false }],
    ['http://minio:80', true, { host: 'minio', port: 80, useSSL: false }],
  ];
  for (const [value, sslDefault, endpoint] of cases) {
    it(`reads ${value} (default ${sslDefault ? 'https' : 'http'}) as ${endpoint.useSSL ? 'https' : 'http'}://${endpoint.host}:${endpoint.port}`, () =>
      assert.deepEqual(parseEndpoint(value, sslDefault), endpoint));
  }

  const refused: [string, RegExp][] = [
    ['http://minio:9000/images', /must not have a path/],
    ['minio:9000/bucket', /must not have a path/],
    ['minio:notaport', /Invalid URL/],
  ];
  for (const [value, error] of refused) {
    it(`refuses ${value}`, () => assert.throws(() => parseEndpoint(value, false), error));
  }
});

describe('s3Location: the bucket and key an image URL names', () => {
  const endpoint: S3Endpoint = { host: 'minio', port: 9000, useSSL: false };
  const tls: S3Endpoint = { host: 'minio', port: 443, useSSL: true };
  const cases: [string, string, S3Endpoint | undefined, { bucket: string; key: string } | undefined][] = [
    ['s3://bucket/key', 's3://images/disk.qcow2', undefined, { bucket: 'images', key: 'disk.qcow2' }],
    [
      's3:// with a key in folders',
      's3://images/2025/01/disk.qcow2',
      endpoint,
      { bucket: 'images', key: '2025/01/disk.qcow2' },
    ],
    [
      's3:// with a percent-encoded key',
      's3://images/my%20disk.qcow2',
      undefined,
      { bucket: 'images', key: 'my disk.qcow2' },
    ],
    ['s3:// without a key', 's3://images/', undefined, undefined],
    ['s3:// without a bucket', 's3:///disk.qcow2', undefined, undefined],
    [
      'path style on the endpoint',
      'http://minio:9000/images/disk.qcow2',
      endpoint,
      { bucket: 'images', key: 'disk.qcow2' },
    ],
    [
      'path style with folders and an encoded key',
      'http://minio:9000/images/a/b%2Bc.img',
      endpoint,
      { bucket: 'images', key: 'a/b+c.img' },
    ],
    [
      'path style with the default https port',
      'https://minio/images/disk.qcow2',
      tls,
      { bucket: 'images', key: 'disk.qcow2' },
    ],
    ['path style with only a bucket', 'http://minio:9000/images/', endpoint, undefined],
    ['path style with nothing', 'http://minio:9000/', endpoint, undefined],
    ['another host', 'http://other:9000/images/disk.qcow2', endpoint, undefined],
    ['another port on the endpoint host', 'http://minio:9001/images/disk.qcow2', endpoint, undefined],
    [
      'the default http port when the endpoint is on 9000',
      'http://minio/images/disk.qcow2',
      endpoint,
      undefined,
    ],
    ['http(s) with no endpoint configured', 'http://minio:9000/images/disk.qcow2', undefined, undefined],
    ['an ftp URL on the endpoint host and port', 'ftp://minio:9000/images/disk.qcow2', endpoint, undefined],
  ];
  for (const [what, url, ep, location] of cases) {
    it(`${location ? `maps ${what} to ${location.bucket} / ${location.key}` : `names no object for ${what}`}`, () =>
      assert.deepEqual(s3Location(new URL(url), ep), location));
  }
});

describe('normalizeEtag: etags compare without quotes or a weak marker', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['abc', 'abc'],
    ['"abc"', 'abc'],
    ['W/"abc"', 'abc'],
    ['"d41d8cd98f00b204e9800998ecf8427e-3"', 'd41d8cd98f00b204e9800998ecf8427e-3'],
    ['""', undefined],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [etag, normal] of cases) {
    it(`reads ${JSON.stringify(etag)} as ${JSON.stringify(normal)}`, () =>
      assert.equal(normalizeEtag(etag), normal));
  }
});
