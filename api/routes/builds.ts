// Builds: POST a build context (a tar stream) to build an app's image on the server and push it
// to Pier's registry. The answer streams newline-delimited JSON as the build runs: output lines,
// then one `built` document with the pinned image, or one `error` document (the same shape as
// an error body) when the build fails. Deploying the result is POST /v1/deploys with `build`.
import { Hono } from 'hono';
import { stream } from 'hono/streaming';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.js';
import { appNotFound, findApp, requireScope, type ApiEnv } from '../auth.js';
import { contextTooLarge, spoolContext } from '../build-context-spool.js';
import { lingerOnClose } from '../lingering-close.js';
import { describeRoute } from '../openapi.js';
import { isPierError, PierError } from '../pier-error.js';
import { parseQuery } from '../request.js';

const buildQuery = z.object({
  app: z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be an app name'),
  dockerfile: z
    .string()
    .min(1)
    .max(500)
    .refine((v) => !v.startsWith('/') && !v.split('/').includes('..'), 'must be a path inside the build context')
    .default('Dockerfile'),
  target: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/).optional(),
  /** Build arguments as NAME=VALUE, repeated. */
  arg: z.union([z.string(), z.array(z.string())]).optional(),
});

export const DEFAULT_BUILD_CONTEXT_LIMIT_BYTES = 512 * 1024 ** 2;

describeRoute({
  method: 'post',
  path: '/v1/builds',
  scope: 'deploy',
  summary: "Build an app's image from a build context (body: a tar stream, Content-Type application/x-tar) and push it to Pier's registry",
  description:
    'Streams newline-delimited JSON: `{"type":"line","line":…}` per output line, then `{"type":"built","image":"host/org/app@sha256:…","digest","imageId","contextHash"}` or `{"type":"error","error":{code,message,hint,details}}` (E_BUILD_FAILED with details `{ step, lastLines }`, E_BUILD_DOCKERFILE_MISSING, E_BUILD_DOCKERFILE_INVALID, E_BUILD_BASE_IMAGE_NOT_FOUND, E_PUSH_FAILED). A context over the limit is 413 E_BUILD_CONTEXT_TOO_LARGE; no registry is 503 E_REGISTRY_UNAVAILABLE.',
  query: buildQuery,
  contentType: 'application/x-ndjson',
  errors: [404, 413, 503],
});

export function buildRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();

  r.post('/builds', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'deploy');
    const url = new URL(c.req.url);
    const q = parseQuery(buildQuery, { ...Object.fromEntries(url.searchParams), arg: url.searchParams.getAll('arg') } as unknown as Record<string, string>);
    const args = parseArgs(q.arg);
    // A new app is fine for an org-wide token; an app-scoped token builds only its own app.
    const exists = await findApp(deps.db, auth, q.app).then(
      () => true,
      (err: unknown) => {
        if (isPierError(err) && err.code === 'E_APP_NOT_FOUND' && auth.appId === null) return false;
        throw err;
      },
    );
    if (!exists && auth.appId !== null) throw appNotFound(q.app);
    const builds = deps.builds;
    if (!builds) throw new PierError('E_REGISTRY_UNAVAILABLE', 'this server does not build images', { status: 503, hint: 'run pier server with a Docker engine and a registry' });
    builds.ensureRegistry();
    const limit = deps.buildContextLimitBytes ?? DEFAULT_BUILD_CONTEXT_LIMIT_BYTES;
    const declared = Number(c.req.header('content-length') ?? NaN);
    const body = c.req.raw.body;
    if ((Number.isFinite(declared) && declared > limit) || !body) {
      lingerOnClose((c.env as { incoming?: IncomingMessage } | undefined)?.incoming);
      if (!body) throw new PierError('E_BAD_REQUEST', 'the build context is missing', { status: 400, hint: 'send the context folder as a tar stream (pier deploy does)' });
      throw contextTooLarge(limit, declared);
    }
    const context = await spoolContext(body, join(deps.dataDir ?? '.', 'builds'), limit).catch((err: unknown) => {
      if (isPierError(err) && err.code === 'E_BUILD_CONTEXT_TOO_LARGE') lingerOnClose((c.env as { incoming?: IncomingMessage } | undefined)?.incoming);
      throw err;
    });

    c.header('content-type', 'application/x-ndjson; charset=utf-8');
    c.header('cache-control', 'no-store');
    return stream(
      c,
      async (out) => {
        const send = (doc: unknown) => void out.write(`${JSON.stringify(doc)}\n`);
        send({ type: 'line', line: `context received: ${context.bytes} bytes (${context.hash})` });
        try {
          const built = await builds.build(
            { orgId: auth.orgId, app: q.app, dockerfile: q.dockerfile, target: q.target, args, contextFile: context.file, contextHash: context.hash },
            (line) => send({ type: 'line', line }),
          );
          send({ type: 'built', ...built });
        } catch (err) {
          const known = isPierError(err) ? err : new PierError('E_INTERNAL', 'the build hit an unexpected error; the server log has the details', { cause: err });
          if (!isPierError(err) || known.status >= 500) deps.log.error({ err, app: q.app }, 'build failed');
          send({ type: 'error', error: { code: known.code, message: known.message, ...(known.hint ? { hint: known.hint } : {}), ...(known.details !== undefined ? { details: known.details } : {}) } });
        } finally {
          await context.remove();
        }
      },
      async (err) => {
        deps.log.warn({ err, app: q.app }, 'build stream ended with an error');
        await context.remove();
      },
    );
  });

  return r;
}

function parseArgs(raw: string | string[] | undefined): Record<string, string> {
  const args: Record<string, string> = {};
  for (const item of raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]) {
    const eq = item.indexOf('=');
    const name = eq > 0 ? item.slice(0, eq) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new PierError('E_BAD_REQUEST', `build arg "${item.slice(0, 80)}" is not NAME=VALUE`, { status: 400, hint: 'pass each build arg as arg=NAME=VALUE', details: [{ path: 'arg', message: 'not NAME=VALUE' }] });
    }
    args[name] = item.slice(eq + 1);
  }
  return args;
}
