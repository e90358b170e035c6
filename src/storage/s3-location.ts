/** Where the S3 endpoint is, from MINIO_ENDPOINT (`host[:port]` or `http(s)://host[:port]`). */
export interface S3Endpoint {
  host: string;
  port: number;
  useSSL: boolean;
}

export function parseEndpoint(value: string, useSslByDefault: boolean): S3Endpoint {
  const hasScheme = /^https?:\/\//i.test(value);
  const url = new URL(hasScheme ? value : `${useSslByDefault ? 'https' : 'http'}://${value}`);
  if (url.pathname !== '/' && url.pathname !== '') {
    throw new Error(`MINIO_ENDPOINT must not have a path (${value}); buckets come from the image URL`);
  }
  const useSSL = url.protocol === 'https:';
  return { host: url.hostname, port: url.port ? Number(url.port) : useSSL ? 443 : 80, useSSL };
}

export interface S3Location {
  bucket: string;
  key: string;
}

/**
 * The bucket and key an image URL names on the endpoint: `s3://bucket/key`, or the path-style
 * `http(s)://<endpoint host>/bucket/key` that the original's clients send. Undefined when the URL
 * is not on this endpoint.
 */
export function s3Location(url: URL, endpoint: S3Endpoint | undefined): S3Location | undefined {
  if (url.protocol === 's3:') {
    const key = decodeURIComponent(url.pathname.replace(/^\//, ''));
    return url.hostname && key ? { bucket: url.hostname, key } : undefined;
  }
  if (!endpoint || (url.protocol !== 'http:' && url.protocol !== 'https:')) return undefined;
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  if (url.hostname !== endpoint.host || port !== endpoint.port) return undefined;
  const [bucket, ...rest] = url.pathname.replace(/^\//, '').split('/');
  const key = decodeURIComponent(rest.join('/'));
  return bucket && key ? { bucket: decodeURIComponent(bucket), key } : undefined;
}

/** Etags compare without quotes or a weak marker: `W/"abc"`, `"abc"` and `abc` are the same. */
export function normalizeEtag(etag: string | undefined): string | undefined {
  return etag?.replace(/^W\//, '').replace(/"/g, '') || undefined;
}
