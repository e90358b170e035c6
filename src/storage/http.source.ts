import { Injectable } from '@nestjs/common';
import { Settings } from '../config/settings';
import { AddressPolicy } from './address-policy';
import { httpGet, HttpGetOptions, statusError } from './http-get';
import { ImageRef, ImageSource, ReadRequest, SIDECAR_MAX_BYTES } from './image-source';
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

  readRequest(ref: ImageRef, offset: number): Promise<ReadRequest> {
    return Promise.resolve({
      kind: 'http',
      url: ref.url,
      label: ref.url,
      offset,
      etag: ref.etag,
      stallSeconds: this.settings.retry.stallSeconds,
      addressRules: this.policy.config,
    });
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
