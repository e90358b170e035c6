import { IsIn } from 'class-validator';
import { Env } from '../env.decorator';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const LOG_FORMATS = ['json', 'text'] as const;

export class LogSettings {
  @Env('LOG_LEVEL', { allowed: LOG_LEVELS.join(', '), doc: 'Log level.' })
  @IsIn(LOG_LEVELS)
  level: (typeof LOG_LEVELS)[number] = 'info';

  @Env('LOG_FORMAT', {
    allowed: LOG_FORMATS.join(', '),
    doc: '`json` (one object per line, for journald) or `text` (pretty, for a terminal).',
  })
  @IsIn(LOG_FORMATS)
  format: (typeof LOG_FORMATS)[number] = 'json';
}
