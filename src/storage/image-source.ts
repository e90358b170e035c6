import type { Readable } from 'node:stream';
import type { AddressRulesConfig } from './address-rules';

/** What a source tells about an image before any byte is fetched. */
export interface ImageRef {
  url: string;
  /** Bytes, when the source announces them. */
  size?: number;
  etag?: string;
  lastModified?: string;
}

/** The answer to a read (readBody): the bytes from `start`, and the version (etag) they belong to. */
export interface ImageBody {
  body: Readable;
  /** Offset of the first byte: the requested one, or 0 when the server sent the whole object. */
  start: number;
  etag?: string;
}

/**
 * A read of an image's bytes from `offset`, described as plain data: the download thread performs
 * it (read-body.ts), since a response body cannot cross threads. With an offset the request is
 * guarded by `etag`, so a replaced object answers from 0 or with another etag, never with a mix of
 * versions: plain HTTP with If-Range, S3 with If-Match (a 412 is then fetched again whole).
 */
export interface ReadRequest {
  kind: 'http' | 's3';
  /** What is fetched: the image URL, or a presigned URL that must not appear in errors. */
  url: string;
  /** The image URL, as errors name it. */
  label: string;
  offset: number;
  etag?: string;
  /** DOWNLOAD_STALL_SECONDS */
  stallSeconds: number;
  /** For https: a private CA (PEM), or no verification (S3 settings). */
  tls?: { ca?: string; rejectUnauthorized: boolean };
  /** Rules each URL, the first and every redirect, must pass (plain http sources). */
  addressRules?: AddressRulesConfig;
}

/**
 * The port every image source implements (plain HTTP(S), S3/MinIO). The pipeline and the cache
 * see only this, never the minio client or an HTTP request.
 */
export interface ImageSource {
  /** Whether this source serves the URL (the first source that does wins). */
  handles(url: URL): boolean;
  resolve(url: URL, signal: AbortSignal): Promise<ImageRef>;
  /** How to fetch the image's bytes from `offset` (a download thread performs it with readBody). */
  readRequest(ref: ImageRef, offset: number): Promise<ReadRequest>;
  /** Text of the `<image>.sha256` sidecar next to the image, or undefined when there is none. */
  sidecar(ref: ImageRef, signal: AbortSignal): Promise<string | undefined>;
}

export const IMAGE_SOURCES = Symbol('ImageSource[]');

/** Sidecars are small text files; anything bigger is not one. */
export const SIDECAR_MAX_BYTES = 64 * 1024;
