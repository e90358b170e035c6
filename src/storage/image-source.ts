import type { Readable } from 'node:stream';

/** What a source tells about an image before any byte is fetched. */
export interface ImageRef {
  url: string;
  /** Bytes, when the source announces them. */
  size?: number;
  etag?: string;
  lastModified?: string;
}

/** The answer to a read: the bytes from `start`, and the version (etag) they belong to. */
export interface ImageBody {
  body: Readable;
  /** Offset of the first byte: the requested one, or 0 when the server sent the whole object. */
  start: number;
  etag?: string;
}

/**
 * The port every image source implements (plain HTTP(S), S3/MinIO). The pipeline and the cache
 * see only this, never the minio client or an HTTP request.
 */
export interface ImageSource {
  /** Whether this source serves the URL (the first source that does wins). */
  handles(url: URL): boolean;
  resolve(url: URL, signal: AbortSignal): Promise<ImageRef>;
  /**
   * The image's bytes from `offset`. With an offset the request is guarded by the ref's etag:
   * a replaced object answers from 0 or with another etag, never with a mix of versions.
   */
  read(ref: ImageRef, offset: number, signal: AbortSignal): Promise<ImageBody>;
  /** Text of the `<image>.sha256` sidecar next to the image, or undefined when there is none. */
  sidecar(ref: ImageRef, signal: AbortSignal): Promise<string | undefined>;
}

export const IMAGE_SOURCES = Symbol('ImageSource[]');

/** Sidecars are small text files; anything bigger is not one. */
export const SIDECAR_MAX_BYTES = 64 * 1024;
