import type { Readable } from 'node:stream';

/** What a source tells about an image before any byte is fetched. */
export interface ImageRef {
  url: string;
  /** Bytes, when the source announces them. */
  size?: number;
  etag?: string;
  lastModified?: string;
}

/**
 * The port every image source implements (plain HTTP(S) now; S3/MinIO next). The pipeline sees
 * only this, never fetch() or the minio client.
 */
export interface ImageSource {
  /** URL schemes this source serves, without the colon. */
  readonly schemes: readonly string[];
  /** Whether this source serves the URL (the first source that does wins). */
  handles(url: URL): boolean;
  resolve(url: URL, signal: AbortSignal): Promise<ImageRef>;
  /** A stream of the image's bytes starting at `offset`. */
  open(ref: ImageRef, offset: number, signal: AbortSignal): Promise<Readable>;
}

export const IMAGE_SOURCES = Symbol('ImageSource[]');
