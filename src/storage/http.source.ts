import { Injectable } from '@nestjs/common';
import { Settings } from '../config/settings';
import { AddressPolicy } from './address-policy';
import { httpGet, HttpGetOptions, statusError } from './http-get';
import { ImageBody, ImageRef, ImageSource, SIDECAR_MAX_BYTES } from './image-source';
import { readSmallText } from './read-small';

/** Plain http(s) URLs on any host other than the S3 endpoint. */
@Injectable()
export class HttpSource implements ImageSource {
  constructor(
    private readonly policy: AddressPolicy,
    private readonly settings: Settings,
  ) {}

  /** What every request of this source shares: the address check and the stall limit. */
  private get common(): Pick<HttpGetOptions, 'vet' | 'stallSeconds'> {
    return { vet: (url: URL) => this.policy.vet(url), stallSeconds: this.settings.retry.stallSeconds };
  }

  handles(url: URL): boolean {
    return url.protocol === 'http:' || url.protocol === 'https:';
  }

  async resolve(url: URL, signal: AbortSignal): Promise<ImageRef> {
    const response = await httpGet(url, { method: 'HEAD', signal, ...this.common });
    response.body.resume();
    if (response.status === 405 || response.status === 501) {
      // Some servers refuse HEAD; the GET that follows tells what it needs to.
      return { url: url.href };
    }
    if (response.status !== 200) throw statusError(url.href, response.status);
    const length = response.headers['content-length'];
    return {
      url: url.href,
      size: length === undefined ? undefined : Number(length),
      etag: response.headers.etag,
      lastModified: response.headers['last-modified'],
    };
  }

  async read(ref: ImageRef, offset: number, signal: AbortSignal): Promise<ImageBody> {
    const headers: Record<string, string> = {};
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      // If-Range: a replaced object is sent whole (200) instead of a range of the new version.
      if (ref.etag) headers['if-range'] = ref.etag;
    }
    const response = await httpGet(new URL(ref.url), { headers, signal, ...this.common });
    if (response.status !== 200 && response.status !== 206) {
      response.body.resume();
      throw statusError(ref.url, response.status);
    }
    return { body: response.body, start: response.status === 206 ? offset : 0, etag: response.headers.etag };
  }

  async sidecar(ref: ImageRef, signal: AbortSignal): Promise<string | undefined> {
    const url = new URL(ref.url);
    url.pathname += '.sha256';
    const response = await httpGet(url, { signal, ...this.common });
    if (response.status === 404 || response.status === 403) {
      response.body.resume();
      return undefined;
    }
    if (response.status !== 200) {
      response.body.resume();
      throw statusError(url.href, response.status);
    }
    return readSmallText(response.body, SIDECAR_MAX_BYTES, url.href);
  }
}
