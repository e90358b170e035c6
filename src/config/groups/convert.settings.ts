import { IsIn } from 'class-validator';
import { Env } from '../env.decorator';

export const STREAM_CONVERT_MODES = ['auto', 'off'] as const;
export type StreamConvertMode = (typeof STREAM_CONVERT_MODES)[number];

/** How a cold provision writes its image (stream.stage.ts). */
export class ConvertSettings {
  @Env('STREAM_CONVERT', {
    allowed: STREAM_CONVERT_MODES.join(', '),
    doc:
      '`auto` (the default): a cold provision of a qcow2 or raw image of known length is written to the volume while it ' +
      'downloads (stage `streaming`: the job takes about its download time, not download plus convert); ' +
      'wrapped (gz/xz/zst/bz2) images, other formats, cache hits and sources without a length still download, ' +
      'then convert. `off`: always download, then convert (see docs/operations.md, "Writing while downloading"). ' +
      'The job log says which path ran and why.',
  })
  @IsIn(STREAM_CONVERT_MODES)
  stream: StreamConvertMode = 'auto';
}
