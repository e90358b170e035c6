import { Injectable, PipeTransform } from '@nestjs/common';
import { CacheEntryNotFoundError } from '../common/errors';

/** A cache key in a URL: 64 hex digits (lower-cased); anything else names no entry. */
@Injectable()
export class ShaParamPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (!/^[0-9a-fA-F]{64}$/.test(value)) throw new CacheEntryNotFoundError(value);
    return value.toLowerCase();
  }
}
