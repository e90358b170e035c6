#!/usr/bin/env -S node --max-semi-space-size=1 --max-old-space-size=256
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { resolve } from 'node:path';
import { AddressInfo } from 'node:net';
import rateLimit from '@fastify/rate-limit';
import { UnsupportedMediaTypeException } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module';
import { auditLine } from './auth/audit';
import { AuthGuard } from './auth/auth.guard';
import { AllExceptionsFilter, errorBody, toErrorBody } from './common/all-exceptions.filter';
import { messageOf } from './common/errors';
import { parseJsonBody } from './common/json-body';
import { rootLogger } from './common/logging';
import { NestPinoLogger } from './common/nest-pino-logger';
import { logRequests } from './common/request-log';
import { readConfigFile } from './common/config-file';
import { securityHeaders } from './common/security-headers';
import { validationPipe } from './common/validation';
import { ConfigError, loadSettings } from './config/load-settings';
import { Settings } from './config/settings';

/** Request bodies are small JSON documents; anything bigger is refused with 413. */
const BODY_LIMIT_BYTES = 16 * 1024;
const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** Takes the caller's X-Request-ID when it is sane, else makes one (Fastify's request.id). */
function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && REQUEST_ID_PATTERN.test(given) ? given : randomUUID();
  (req as IncomingMessage & { id?: string }).id = id;
  return id;
}

/** TLS material from the files the settings name (read again on SIGHUP). */
function tlsMaterial(settings: Settings) {
  if (!settings.tls.certFile || !settings.tls.keyFile) return undefined;
  return {
    cert: readConfigFile(settings.tls.certFile, 'TLS_CERT_FILE'),
    key: readConfigFile(settings.tls.keyFile, 'TLS_KEY_FILE'),
    ca: settings.tls.clientCaCert ? readConfigFile(settings.tls.clientCaCert, 'CLIENT_CA_CERT') : undefined,
  };
}

async function bootstrap(settings: Settings): Promise<void> {
  const tls = tlsMaterial(settings);
  const adapter = new FastifyAdapter({
    bodyLimit: BODY_LIMIT_BYTES,
    genReqId: requestId,
    logger: false,
    // mTLS: certificates are requested and checked against CLIENT_CA_CERT (never a public CA
    // bundle); an unverified or missing one does not end the handshake, so token clients get in,
    // but it authenticates nothing (see AuthGuard).
    https: tls
      ? { ...tls, minVersion: 'TLSv1.2', requestCert: Boolean(tls.ca), rejectUnauthorized: false }
      : undefined,
  });
  const root = rootLogger(settings);
  const logger = new NestPinoLogger(root);
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forSettings(settings), adapter, {
    logger,
    // Let start-up errors reach the one-line message below instead of Nest's own exit.
    abortOnError: false,
  });
  app.useGlobalPipes(validationPipe());
  // JSON bodies through our parser: Fastify's answers a syntax error and a refused `__proto__` key
  // with the same "Body is not valid JSON" text; ours says which, and where.
  app.useBodyParser(
    'application/json',
    { bodyLimit: BODY_LIMIT_BYTES },
    async (_request: unknown, body: Buffer) => parseJsonBody(body.toString('utf8')),
  );
  app.useGlobalFilters(new AllExceptionsFilter(resolve(settings.dbPath)));
  const auth = app.get(AuthGuard);
  if (settings.auth.disabled) {
    logger.warn(
      'AUTH_DISABLED=true: the API accepts requests from anyone who can reach it. Do not run like this outside a lab.',
    );
  } else if (!auth.enforcing) {
    logger.warn(`no authentication configured: listening on loopback only (${settings.host})`);
  }

  const fastify = app.getHttpAdapter().getInstance();
  logRequests(fastify, root);
  // helmet's headers on every answer, refusals included (this hook runs first). The API serves
  // JSON; Swagger UI needs its inline script, so no CSP (the other headers stay).
  const headers = securityHeaders({ contentSecurityPolicy: false });
  fastify.addHook('onRequest', (_request, reply, done) => {
    reply.headers(headers);
    done();
  });
  fastify.addHook('onRequest', (request, reply) => auth.check(request, reply));
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
  fastify.addHook('onSend', async (request, reply, payload) => {
    reply.header('x-request-id', request.id);
    const audit = auditLine(request, reply, payload);
    if (audit) logger.log(audit);
    return payload;
  });
  await app.register(rateLimit, {
    max: settings.rateLimitPerMinute,
    timeWindow: 60_000,
    hook: 'preHandler',
    allowList: (request) => request.method !== 'POST',
    keyGenerator: (request) => request.principal?.name ?? request.ip,
    errorResponseBuilder: (request, context) => ({
      statusCode: 429,
      ...errorBody(
        429,
        'rate_limited',
        `more than ${context.max} POST requests per minute from ${request.principal?.name ?? request.ip}; retry in ${Math.ceil(context.ttl / 1000)} s`,
        String(request.id),
      ),
    }),
  });

  if (settings.docsEnabled) setupDocs(app);

  // SIGTERM/SIGINT: stop taking jobs, let running ones finish (SHUTDOWN_GRACE), exit 0. Not via
  // Nest's enableShutdownHooks(): it also takes SIGHUP (a reload would stop the daemon) and
  // re-raises the signal at the end instead of exiting 0.
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      logger.log({ signal, msg: 'stopping' });
      app.close().then(
        () => process.exit(0),
        (error: Error) => {
          process.stderr.write(`libvirt-volume-provisioner: error while stopping: ${error.message}\n`);
          process.exit(1);
        },
      );
    });
  }

  const inherited = systemdSocket();
  if (inherited !== undefined) {
    // Socket activation: systemd holds the listening socket (fd 3) and hands it over.
    await app.init();
    await fastify.ready();
    await new Promise<void>((resolve, reject) => {
      app.getHttpServer().once('error', reject);
      app.getHttpServer().listen({ fd: inherited }, () => resolve());
    });
  } else {
    await app.listen({ port: settings.port, host: settings.host });
  }

  // SIGHUP: tokens and certificates are read again; the daemon and its jobs go on.
  process.on('SIGHUP', () => {
    try {
      auth.reload();
      const material = tlsMaterial(settings);
      if (material) (app.getHttpServer() as HttpsServer).setSecureContext({ ...material });
      logger.log('SIGHUP: reloaded API tokens and TLS material');
    } catch (error) {
      logger.error({
        error: messageOf(error),
        msg: 'SIGHUP reload failed; keeping the previous tokens and certificates',
      });
    }
  });
  const address = app.getHttpServer().address() as AddressInfo;
  const scheme = tls ? 'https' : 'http';
  logger.log({
    host: address.address,
    port: address.port,
    socket_activated: inherited !== undefined,
    msg: `listening on ${scheme}://${address.address}:${address.port}`,
  });
}

/**
 * Swagger UI at /docs and the OpenAPI document at /docs/json. The document is built on the first
 * request for it (SwaggerModule takes a factory), not at start: a daemon whose docs nobody reads
 * does not keep the document in memory.
 */
function setupDocs(app: NestFastifyApplication): void {
  const config = new DocumentBuilder()
    .setTitle('libvirt-volume-provisioner')
    .setDescription('Fills libvirt VM volumes with verified images, with progress all the way.')
    .setVersion(process.env.npm_package_version ?? '0.1.0')
    .addBearerAuth()
    .addApiKey({ type: 'apiKey', in: 'header', name: 'X-API-Token' }, 'X-API-Token')
    .build();
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, config), {
    jsonDocumentUrl: 'docs/json',
  });
}

/** The listening socket systemd passed (LISTEN_FDS/LISTEN_PID), or undefined when started directly. */
function systemdSocket(): number | undefined {
  if (process.env.LISTEN_PID !== String(process.pid) || Number(process.env.LISTEN_FDS ?? 0) < 1)
    return undefined;
  // Not for our children: they must not think the socket is theirs.
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_FDNAMES;
  return 3;
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
