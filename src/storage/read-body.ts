import { Agent as HttpsAgent } from 'node:https';
import { SourceError } from '../common/errors';
import { AddressRules } from './address-rules';
import { httpGet, HttpGetOptions, statusError } from './http-get';
import { SIDECAR_MAX_BYTES, type ImageBody, type ReadRequest } from './image-source';
import { readSmallText } from './read-small';
import { normalizeEtag } from './s3-location';

/**
 * Performs a ReadRequest: the GET of an image's bytes from its offset, as the download thread
 * does it. Loads no Nest and no minio (the thread's heap stays small).
 */
export async function readBody(request: ReadRequest, signal: AbortSignal): Promise<ImageBody> {
  const common = getOptions(request, signal);
  const url = new URL(request.url);
  const headers: Record<string, string> = {};
  if (request.offset > 0) {
    headers.range = `bytes=${request.offset}-`;
    Object.assign(headers, versionGuard(request));
  }
  let response = await httpGet(url, { ...common, headers });
  if (response.status === 412 && request.kind === 's3') {
    // The object changed since the first try: start again from byte 0 of the new version.
    response.body.resume();
    response = await httpGet(url, common);
  }
  if (response.status !== 200 && response.status !== 206) {
    const error = statusError(request.label, response.status);
    if (request.kind === 'http') {
      response.body.resume();
      throw error;
    }
    const text = await readSmallText(response.body, SIDECAR_MAX_BYTES, request.label).catch(() => '');
    throw withS3Code(error, text);
  }
  const etag = response.headers.etag;
  return {
    body: response.body,
    start: response.status === 206 ? request.offset : 0,
    etag: request.kind === 's3' ? normalizeEtag(etag) : etag,
  };
}

/**
 * The bytes [offset, offset + length) of the version `request.etag` names, whole, or an error:
 * a server that ignores ranges (200), another version (S3: 412 by If-Match; plain HTTP: 200 by
 * If-Range), or a short body. For reads of an image far ahead of its download (nbd/reads-ahead.ts);
 * whatever it returns is compared with the downloaded bytes once they arrive.
 */
export async function readRange(
  request: ReadRequest,
  offset: number,
  length: number,
  signal: AbortSignal,
): Promise<Buffer> {
  const headers = { range: `bytes=${offset}-${offset + length - 1}`, ...versionGuard(request) };
  const response = await httpGet(new URL(request.url), { ...getOptions(request, signal), headers });
  const range = /^bytes (\d+)-(\d+)\//.exec(String(response.headers['content-range'] ?? ''));
  if (
    response.status !== 206 ||
    Number(range?.[1]) !== offset ||
    Number(range?.[2]) !== offset + length - 1
  ) {
    response.body.destroy();
    throw statusError(request.label, response.status, `answered a range request of ${length} bytes with`);
  }
  const data = Buffer.alloc(length);
  let filled = 0;
  for await (const chunk of response.body) {
    const bytes = chunk as Buffer;
    if (filled + bytes.length > length) {
      response.body.destroy();
      throw new SourceError(`${request.label} sent more than the ${length} bytes of a range`);
    }
    bytes.copy(data, filled);
    filled += bytes.length;
  }
  if (filled !== length)
    throw new SourceError(`${request.label} sent ${filled} of the ${length} bytes of a range`, {}, true);
  return data;
}

/**
 * The header that ties a range to the version `request.etag` names. Plain HTTP: If-Range, a
 * replaced object is sent whole (200). S3: If-Match, answered 412.
 */
function versionGuard(request: ReadRequest): Record<string, string> {
  if (!request.etag) return {};
  return request.kind === 'http' ? { 'if-range': request.etag } : { 'if-match': `"${request.etag}"` };
}

function getOptions(request: ReadRequest, signal: AbortSignal): HttpGetOptions {
  const rules = request.addressRules ? new AddressRules(request.addressRules) : undefined;
  return {
    signal,
    stallSeconds: request.stallSeconds,
    label: request.label,
    httpsAgent: request.tls ? new HttpsAgent(request.tls) : undefined,
    vet: rules ? (url: URL) => rules.vet(url) : undefined,
  };
}

/** An S3 error answer names its cause in `<Code>`: the message gains it. */
function withS3Code(error: SourceError, body: string): SourceError {
  const code = /<Code>([^<]+)<\/Code>/.exec(body)?.[1];
  if (!code) return error;
  return new SourceError(
    `${error.message} (S3 code ${code})`,
    { ...error.details, s3_code: code },
    error.retryable,
  );
}
