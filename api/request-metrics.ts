// Counts the API's requests by route pattern (`/v1/apps/:app`, not the app's name, so the number of
// series stays small), method and status class, with a latency histogram per route, for /metrics.
import type { MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { Counter, Histogram, type MetricFamily } from './prometheus-text.js';

export interface RequestMetrics {
  middleware: MiddlewareHandler;
  families(): MetricFamily[];
}

export function createRequestMetrics(): RequestMetrics {
  const requests = new Counter('pier_api_requests_total', 'HTTP requests answered by the API, by route pattern, method and status class (2xx, 4xx, 5xx…)');
  const latency = new Histogram('pier_api_request_duration_seconds', 'Time from a request to its response headers, by route pattern and method (streams count until they start)');
  return {
    async middleware(c, next) {
      const started = performance.now();
      try {
        await next();
      } finally {
        // The route's pattern; middleware-only matches (a 404) are "unmatched".
        const route = matchedRoutes(c).filter((r) => r.method !== 'ALL').at(-1)?.path ?? 'unmatched';
        const method = c.req.method;
        requests.inc({ route, method, code: `${Math.floor(c.res.status / 100)}xx` });
        latency.observe({ route, method }, (performance.now() - started) / 1000);
      }
    },
    families: () => [requests.family(), latency.family()],
  };
}
