import { Injectable, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Settings } from '../config/settings';
import { verifiedClientCert } from './client-cert';
import { loadTokens, matchToken, TokenEntry } from './token-store';

/** Who made a request: a token's name or a certificate's subject (or `anonymous` without auth). */
export interface Principal {
  kind: 'token' | 'certificate' | 'anonymous';
  name: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

const PROBES = /^\/(health|healthz|livez|readyz)\/?$/;

/**
 * The one guard in front of every route (a Fastify onRequest hook, so Swagger UI and /metrics
 * are covered too): a verified client certificate OR a valid API token. Probes stay open;
 * /metrics too unless METRICS_REQUIRE_AUTH. Answers say 401 or 403, never which part was wrong.
 */
@Injectable()
export class AuthGuard {
  private readonly logger = new Logger('Auth');
  private tokens: TokenEntry[] = [];
  private readonly allowedSubjects: string[];

  constructor(private readonly settings: Settings) {
    this.allowedSubjects = (settings.auth.allowedClientSubjects ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    this.reload();
  }

  /** Whether any credential is configured at all. */
  get enforcing(): boolean {
    return (
      !this.settings.auth.disabled &&
      (this.settings.auth.apiTokensFile !== undefined || this.settings.tls.clientCaCert !== undefined)
    );
  }

  /** Re-reads the tokens file (SIGHUP). Throws on a bad file, keeping the tokens it had. */
  reload(): void {
    if (this.settings.auth.apiTokensFile) {
      this.tokens = loadTokens(this.settings.auth.apiTokensFile);
      this.logger.log({
        tokens: this.tokens.map((t) => t.name),
        msg: `loaded ${this.tokens.length} API token(s)`,
      });
    }
  }

  async check(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const path = request.url.split('?')[0];
    if (PROBES.test(path) || (path === '/metrics' && !this.settings.auth.metricsRequireAuth)) return;
    if (!this.enforcing) {
      request.principal = { kind: 'anonymous', name: 'anonymous' };
      return;
    }
    const cert = this.settings.tls.clientCaCert ? verifiedClientCert(request.raw.socket) : undefined;
    if (cert) {
      if (this.allowedSubjects.length > 0 && !cert.names.some((n) => this.allowedSubjects.includes(n))) {
        this.logger.warn({
          subject: cert.subject,
          remote_address: request.ip,
          msg: 'client certificate not allowed',
        });
        return this.refuse(request, reply, 403, 'forbidden', 'this client certificate is not allowed here');
      }
      request.principal = { kind: 'certificate', name: cert.subject };
      return;
    }
    const presented = bearer(request.headers.authorization) ?? header(request.headers['x-api-token']);
    const name = presented === undefined ? undefined : matchToken(this.tokens, presented);
    if (name) {
      request.principal = { kind: 'token', name };
      return;
    }
    return this.refuse(
      request,
      reply,
      401,
      'unauthorized',
      'authentication required: a client certificate or an API token',
    );
  }

  private async refuse(
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    code: string,
    message: string,
  ) {
    await reply
      .code(status)
      .header('x-request-id', request.id)
      .header('content-type', 'application/json; charset=utf-8')
      .send({ code, message, request_id: request.id });
  }
}

function bearer(value: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value ?? '');
  return match?.[1];
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value || undefined;
}
