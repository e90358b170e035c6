#!/usr/bin/env node
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AddressInfo } from 'node:net';
import { UnsupportedMediaTypeException } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { AllExceptionsFilter, toErrorBody } from './common/all-exceptions.filter';
import { validationPipe } from './common/validation';
import { ConfigError, loadSettings } from './config/load-settings';
import { Settings } from './config/settings';

/** Request bodies are small JSON documents; anything bigger is refused with 413. */
const BODY_LIMIT_BYTES = 16 * 1024;
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** Takes the caller's X-Request-ID when it is sane, else makes one; pino-http reads it from req.id. */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
  (req as IncomingMessage & { id?: string }).id = id;
  return id;
}

async function bootstrap(settings: Settings): Promise<void> {
  const adapter = new FastifyAdapter({ bodyLimit: BODY_LIMIT_BYTES, genReqId: requestId, logger: false });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forSettings(settings), adapter, {
    bufferLogs: true,
    // Let start-up errors reach the one-line message below instead of Nest's own exit.
    abortOnError: false,
  });
  const logger = app.get(Logger);
  app.useLogger(logger);
  app.useGlobalPipes(validationPipe());
  app.useGlobalFilters(new AllExceptionsFilter());
  const fastify = app.getHttpAdapter().getInstance();
  fastify.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  // The API speaks JSON only; a form-encoded or text body is refused (415), not half-understood.
  fastify.addHook('onRequest', async (request, reply) => {
    const type = request.headers['content-type'];
    if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
      const body = toErrorBody(
        new UnsupportedMediaTypeException('send the body as application/json'),
        request.id,
      );
      await reply.code(415).header('x-request-id', request.id).send(body.body);
    }
  });

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('libvirt-volume-provisioner')
      .setDescription('Fills libvirt VM volumes with verified images, with progress all the way.')
      .setVersion(process.env.npm_package_version ?? '0.1.0')
      .build(),
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/json' });

  app.enableShutdownHooks();
  await app.listen({ port: settings.port, host: settings.host });
  const address = app.getHttpServer().address() as AddressInfo;
  logger.log({
    host: address.address,
    port: address.port,
    msg: `listening on http://${address.address}:${address.port}`,
  });
}

let settings: Settings;
try {
  settings = loadSettings();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`libvirt-volume-provisioner: invalid configuration:\n${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
bootstrap(settings).catch((error: Error) => {
  process.stderr.write(`libvirt-volume-provisioner: cannot start: ${error.message}\n`);
  process.exit(1);
});
