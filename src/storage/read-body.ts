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
  const rules = request.addressRules ? new AddressRules(request.addressRules) : undefined;
  const common: HttpGetOptions = {
    signal,
    stallSeconds: request.stallSeconds,
    label: request.label,
    httpsAgent: request.tls ? new HttpsAgent(request.tls) : undefined,
    vet: rules ? (url: URL) => rules.vet(url) : undefined,
  };
  const url = new URL(request.url);
  const headers: Record<string, string> = {};
  if (request.offset > 0) {
    headers.range = `bytes=${request.offset}-`;
    // Plain HTTP: If-Range, a replaced object is sent whole (200). S3: If-Match, answered 412.
    if (request.etag && request.kind === 'http') headers['if-range'] = request.etag;
    if (request.etag && request.kind === 's3') headers['if-match'] = `"${request.etag}"`;
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
