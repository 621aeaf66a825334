// The HTTP API: routes under /v1 behind bearer-token auth, /healthz for readiness, the state of
// each dependency and whether the edges serve what is desired, a body limit and a character check in front of every route, and the one
// place where errors become `{ "error": { code, message, hint } }` with their status.
import type { IncomingMessage } from 'node:http';
import { Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { sql } from 'drizzle-orm';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ApiDeps } from './api-deps.js';
import { audit } from './audit.js';
import { authenticate, type ApiEnv } from './auth.js';
import { controlCharacterProblem, printable } from './control-characters.js';
import { createDependencyHealth } from './dependency-health.js';
import { createServingHealth } from './serving-health.js';
import { classifyDatabaseError } from './database-errors.js';
import { idempotency } from './idempotency.js';
import { lingerOnClose } from './lingering-close.js';
import { isPierError } from './pier-error.js';
import { invalidCharacters } from './request.js';
import { createRequestMetrics } from './request-metrics.js';
import { metricsRoutes } from './routes/metrics.js';
import { appDeleteRoutes } from './routes/app-delete.js';
import { appRoutes } from './routes/apps.js';
import { buildRoutes } from './routes/builds.js';
import { deployRoutes } from './routes/deploys.js';
import { describeRoutes } from './routes/describe.js';
import { eventStreamRoutes } from './routes/event-stream.js';
import { eventRoutes } from './routes/events.js';
import { edgeRoutes } from './routes/edge.js';
import { execRoutes } from './routes/exec.js';
import { connectRoutes } from './routes/connect.js';
import { logRoutes } from './routes/logs.js';
import { nodeRoutes } from './routes/nodes.js';
import { openApiRoutes } from './routes/openapi.js';
import { registryRoutes } from './routes/registry.js';
import { tokenRoutes } from './routes/tokens.js';
import { ipRoutes } from './routes/ips.js';
import { certRoutes } from './routes/certs.js';
import { createIpService } from './ip-service.js';
import { createTransactions } from './transactions.js';
import { DEFAULT_IP_COOLDOWN_MS } from './config.js';
import { isSnapshotImport, volumeRoutes } from './routes/volumes.js';
import { createEnvironmentService } from './environment-service.js';
import { environmentRoutes } from './routes/environments.js';
import { createSecretService } from './secret-service.js';
import { secretRoutes } from './routes/secrets.js';
import type { ErrorBody } from './views.js';

/** Request bodies above this are refused (413) unless the server is configured otherwise. */
export const DEFAULT_BODY_LIMIT_BYTES = 4 * 1024 * 1024;

export function createApi(deps: ApiDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const limit = deps.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  // First, so it sees every answer (a refused body and a 404 too).
  const requests = createRequestMetrics();
  app.use('*', requests.middleware);

  // Before anything reads the body: a declared length above the limit is refused from the
  // headers alone, a chunked body as soon as it passes the limit. The connection is closed
  // rather than the rest of the body read.
  const limitBody = bodyLimit({
    maxSize: limit,
    onError: (c) => {
      // The client is most likely still sending: close so that it still reads this answer.
      lingerOnClose((c.env as { incoming?: IncomingMessage } | undefined)?.incoming);
      return c.json(
        errorBody('E_BODY_TOO_LARGE', `the request body is larger than the limit of ${formatBytes(limit)}`, 'send a smaller body; the server operator sets the limit with PIER_BODY_LIMIT or --body-limit'),
        413,
        { connection: 'close' },
      );
    },
  });
  // A build context is a stream with its own, larger limit (api/routes/builds.ts); a snapshot
  // import is as large as the volume: it streams to disk and is checked there.
  app.use('*', (c, next) => ((c.req.method === 'POST' && c.req.path === '/v1/builds') || isSnapshotImport(c.req.method, c.req.path) ? next() : limitBody(c, next)));
  app.use('*', refuseControlCharactersInUrl);

  const dependencies = createDependencyHealth({
    probes: {
      database: () => told('database', deps.db.execute(sql`select 1`)),
      docker: () => told('runtime', deps.runtime.ping()),
    },
  });
  /** A failed probe is news for the system monitor too. */
  function told(dependency: 'database' | 'runtime', probe: Promise<unknown>): Promise<unknown> {
    return probe.catch((err: unknown) => {
      deps.onDependencyDown?.(dependency, err);
      throw err;
    });
  }
  const serving = createServingHealth({ db: deps.db, ttlMs: deps.servingHealthTtlMs });
  app.get('/healthz', async (c) => {
    if (!deps.ready()) return c.json(errorBody('E_NOT_READY', 'the server is starting'), 503);
    const [checks, served] = await Promise.all([dependencies.check(), serving.check()]);
    const degraded = Object.values(checks).some((d) => d.status !== 'up');
    // 200 either way: the process is alive and serves what it can (the edge goes on), and a
    // supervisor that restarted it for a dependency's outage would only drop traffic. `status`
    // says whether the API is up; `serving` whether the edges serve what is desired.
    return c.json({ ok: true, status: degraded ? 'degraded' : 'up', serving: served, dependencies: checks });
  });

  app.route('/', openApiRoutes());
  app.route('/', metricsRoutes(deps, requests));
  app.use('/v1/*', authenticate(deps.db));
  app.use('/v1/*', audit({ db: deps.db, events: deps.events, log: deps.log }));
  app.use('/v1/*', idempotency(deps.db));
  app.route('/v1', appRoutes(deps));
  app.route('/v1', appDeleteRoutes(deps));
  app.route('/v1', deployRoutes(deps));
  app.route('/v1', buildRoutes(deps));
  app.route('/v1', edgeRoutes(deps));
  app.route('/v1', logRoutes(deps));
  app.route('/v1', execRoutes(deps));
  app.route('/v1', describeRoutes(deps));
  app.route('/v1', eventStreamRoutes(deps));
  app.route('/v1', eventRoutes(deps));
  app.route('/v1', tokenRoutes(deps));
  const ips = deps.ips ?? createIpService({ db: deps.db, transactions: createTransactions({ db: deps.db, events: deps.events }), pools: [], sharedAddresses: deps.sharedAddresses, cooldownMs: DEFAULT_IP_COOLDOWN_MS });
  app.route('/v1', ipRoutes({ ...deps, ips }));
  app.route('/v1', nodeRoutes(deps));
  app.route('/v1', registryRoutes(deps));
  app.route('/v1', volumeRoutes(deps));
  app.route('/v1', connectRoutes(deps));
  app.route('/v1', certRoutes(deps));
  const environments = deps.environments ?? createEnvironmentService({ db: deps.db, transactions: createTransactions({ db: deps.db, events: deps.events }), deleter: deps.deleter });
  app.route('/v1', environmentRoutes({ ...deps, environments }));
  const secrets = deps.secrets ?? createSecretService({ db: deps.db, transactions: createTransactions({ db: deps.db, events: deps.events }), box: null, release: deps.deploys.withSecrets });
  app.route('/v1', secretRoutes({ ...deps, secrets }));

  app.notFound((c) => c.json(errorBody('E_ROUTE_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`, 'see docs/api.md for the routes'), 404));

  app.onError((err, c) => {
    // A database error that means something (connection lost, bad text) reads as its PierError.
    const known = isPierError(err) ? err : classifyDatabaseError(err);
    if (known) {
      const body = errorBody(known.code, known.message, known.hint, known.details);
      if (known.status >= 500) deps.log.error({ err, path: c.req.path }, 'request failed');
      return c.json(body, known.status as ContentfulStatusCode);
    }
    deps.log.error({ err, method: c.req.method, path: c.req.path }, 'unexpected error');
    return c.json(errorBody('E_INTERNAL', 'the server hit an unexpected error; its log has the details'), 500);
  });

  return app;
}

/** Path and query text reaches the database (app and instance names, filters): no control characters. */
const refuseControlCharactersInUrl: MiddlewareHandler = async (c, next) => {
  const url = new URL(c.req.url);
  let path = url.pathname;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    // Not percent-encoding we can read: the routes answer it as an unknown path.
  }
  const problems: { path: string; message: string }[] = [];
  const inPath = controlCharacterProblem(path, 'line');
  if (inPath) problems.push({ path: 'path', message: inPath });
  for (const [key, value] of url.searchParams) {
    const problem = controlCharacterProblem(key, 'line') ?? controlCharacterProblem(value, 'text');
    if (problem) problems.push({ path: printable(key), message: problem });
  }
  if (problems.length) throw invalidCharacters(problems.slice(0, 50), problems.length, 'URL');
  await next();
};

function formatBytes(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
}

function errorBody(code: string, message: string, hint?: string, details?: unknown): ErrorBody {
  return { error: { code, message, ...(hint ? { hint } : {}), ...(details !== undefined ? { details } : {}) } };
}
