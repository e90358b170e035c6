import { Readable } from 'node:stream';
import { Injectable } from '@nestjs/common';
import { SourceError } from '../common/errors';
import { ImageRef, ImageSource } from './image-source';

/** Plain http(s) URLs, read with Node's fetch; bodies are streamed, never buffered. */
@Injectable()
export class HttpSource implements ImageSource {
  readonly schemes = ['http', 'https'] as const;

  handles(url: URL): boolean {
    return url.protocol === 'http:' || url.protocol === 'https:';
  }

  async resolve(url: URL, signal: AbortSignal): Promise<ImageRef> {
    const response = await this.request(url, { method: 'HEAD', signal });
    if (response.status === 405 || response.status === 501) {
      // Some servers refuse HEAD; the GET that follows tells the size instead.
      return { url: url.href };
    }
    this.assertOk(url, response);
    const length = response.headers.get('content-length');
    return {
      url: url.href,
      size: length === null ? undefined : Number(length),
      etag: response.headers.get('etag') ?? undefined,
      lastModified: response.headers.get('last-modified') ?? undefined,
    };
  }

  async open(ref: ImageRef, offset: number, signal: AbortSignal): Promise<Readable> {
    const url = new URL(ref.url);
    const headers: Record<string, string> = {};
    if (offset > 0) {
      headers.range = `bytes=${offset}-`;
      if (ref.etag) headers['if-range'] = ref.etag;
    }
    const response = await this.request(url, { headers, signal });
    this.assertOk(url, response);
    if (offset > 0 && response.status !== 206) {
      throw new SourceError(`GET ${url.href} ignored the range request (status ${response.status})`);
    }
    if (!response.body) throw new SourceError(`GET ${url.href} returned no body`);
    return Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  }

  private async request(url: URL, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, { ...init, redirect: 'follow' });
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new SourceError(
        `cannot reach ${url.origin}: ${cause?.code ?? cause?.message ?? (error as Error).message}`,
        {
          url: url.href,
        },
      );
    }
  }

  private assertOk(url: URL, response: Response): void {
    if (response.ok) return;
    const hint =
      response.status === 404
        ? ': the image does not exist at this URL'
        : response.status === 401 || response.status === 403
          ? ': the server refused access'
          : '';
    throw new SourceError(`${url.href} answered HTTP ${response.status}${hint}`, {
      url: url.href,
      http_status: response.status,
    });
  }
}
