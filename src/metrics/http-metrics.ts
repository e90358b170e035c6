import { Injectable, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { InjectMetric } from '@willsoto/nestjs-prometheus';
import type { FastifyInstance } from 'fastify';
import type { Counter, Histogram } from 'prom-client';
import { REQUEST_DURATION, REQUESTS_TOTAL } from './metrics';

/**
 * Counts every answered request by its route TEMPLATE (`/api/v1/status/:job_id`; label `endpoint`,
 * the original's name), never the raw URL, so one series per route whatever the ids; requests no
 * route matched share `unmatched`.
 * A Fastify onResponse hook, so requests refused before Nest (auth, 415, 429) count too.
 */
@Injectable()
export class HttpMetrics implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @InjectMetric(REQUESTS_TOTAL) private readonly requests: Counter<string>,
    @InjectMetric(REQUEST_DURATION) private readonly duration: Histogram<string>,
  ) {}

  /** Runs before Fastify is ready; it attaches root hooks to every route at that point. */
  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.addHook('onResponse', async (request, reply) => {
      const endpoint = request.routeOptions.url ?? 'unmatched';
      const labels = { method: request.method, endpoint, status: String(reply.statusCode) };
      this.requests.inc(labels);
      // An event stream lasts as long as its job: not a latency, and it would trip the latency alert.
      if (!endpoint.endsWith('/events')) this.duration.observe(labels, reply.elapsedTime / 1000);
    });
  }
}
