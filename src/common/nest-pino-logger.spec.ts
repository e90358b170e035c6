import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { Logger } from '@nestjs/common';
import pino from 'pino';
import { NestPinoLogger } from './nest-pino-logger';

type Line = Record<string, unknown> & { level: number; msg?: string };

/** A NestPinoLogger over a real pino writing JSON lines into an array. */
function capture(level = 'trace') {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)) as Line);
      done();
    },
  });
  return { logger: new NestPinoLogger(pino({ level }, sink)), lines };
}

/** The fields a line carries besides pino's own (time, pid, hostname). */
function fields(line: Line): Record<string, unknown> {
  const { time: _t, pid: _p, hostname: _h, ...rest } = line;
  return rest;
}

describe('NestPinoLogger', () => {
  const cases: Array<{ name: string; call: (l: NestPinoLogger) => void; line: Record<string, unknown> }> = [
    {
      name: 'a string with a context (new Logger(Context).log)',
      call: (l) => l.log('listening', 'Main'),
      line: { level: 30, context: 'Main', msg: 'listening' },
    },
    {
      name: 'an object: its fields, msg included, beside the context',
      call: (l) => l.warn({ sha256: 'ab', msg: 'cache eviction failed' }, 'ImageCache'),
      line: { level: 40, sha256: 'ab', msg: 'cache eviction failed', context: 'ImageCache' },
    },
    {
      name: 'a string without a context',
      call: (l) => l.debug('plain'),
      line: { level: 20, msg: 'plain' },
    },
    {
      name: 'printf arguments between the message and the context',
      call: (l) => l.log('%d jobs', 3, 'Jobs'),
      line: { level: 30, context: 'Jobs', msg: '3 jobs' },
    },
    {
      name: 'verbose as trace, fatal as fatal',
      call: (l) => {
        l.verbose('v', 'A');
        l.fatal('f', 'A');
      },
      line: { level: 60, context: 'A', msg: 'f' },
    },
  ];
  for (const c of cases) {
    it(`writes ${c.name}`, () => {
      const { logger, lines } = capture();
      c.call(logger);
      assert.deepEqual(fields(lines[lines.length - 1]), c.line);
    });
  }

  it('writes verbose at trace level', () => {
    const { logger, lines } = capture();
    logger.verbose('v', 'A');
    assert.equal(lines[0].level, 10);
  });

  it('serializes an Error under err with its stack', () => {
    const { logger, lines } = capture();
    logger.error(new Error('disk gone'), 'Jobs');
    const err = lines[0].err as { message: string; stack: string; type: string };
    assert.equal(lines[0].context, 'Jobs');
    assert.equal(err.message, 'disk gone');
    assert.equal(err.type, 'Error');
    assert.match(err.stack, /disk gone\n\s+at /);
  });

  it("keeps the stack Nest's exception handlers pass as a second string", () => {
    const { logger, lines } = capture();
    const stack = 'Error: boom\n    at somewhere (file.js:1:1)';
    logger.error('boom', stack, 'ExceptionsHandler');
    const err = lines[0].err as { message: string; stack: string };
    assert.equal(lines[0].context, 'ExceptionsHandler');
    assert.equal(err.message, 'boom');
    assert.equal(err.stack, stack);
  });

  it('drops what the level leaves out', () => {
    const { logger, lines } = capture('info');
    logger.debug('not written', 'A');
    logger.log('written', 'A');
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['written'],
    );
  });

  it("is what Nest's static Logger writes through once installed", () => {
    const { logger, lines } = capture();
    Logger.overrideLogger(logger);
    try {
      new Logger('JobsService').log({ job_id: 'j1', msg: 'job accepted' });
    } finally {
      Logger.overrideLogger(false);
    }
    assert.deepEqual(fields(lines[0]), {
      level: 30,
      job_id: 'j1',
      msg: 'job accepted',
      context: 'JobsService',
    });
  });
});
