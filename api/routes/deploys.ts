// Deploys: POST a manifest to roll out a release; GET a deployment to follow it.
import { Hono } from 'hono';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.js';
import { requireScope, type ApiEnv } from '../auth.js';
import { environmentEndpoints } from '../environment-endpoints.js';
import { ttlMs, ttlSchema } from '../environment-overrides.js';
import { environmentView } from '../environment-views.js';
import { findDeployment } from '../find-deployment.js';
import { parseManifest, validateManifest } from '../manifest.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { parseBody, readJson } from '../request.js';
import { deploymentViewSchema, deployViewSchema } from '../view-schemas.js';
import { appView, deploymentView, releaseView, type DeployView } from '../views.js';

const deployBody = z.object({
  /** The manifest as TOML text (what `pier deploy` sends) or as a JSON object. */
  manifest: z.union([z.string(), z.record(z.string(), z.unknown())]),
  /** Shown in errors about the manifest, e.g. `pier.toml`. */
  file: z.string().max(200).default('pier.toml'),
  description: z.string().max(500).default(''),
  /** For a manifest with [build]: the image POST /v1/builds pushed for it. */
  build: z
    .object({
      image: z.string().max(500).regex(/@sha256:[0-9a-f]{64}$/, 'must be the pinned image a build returned (host/org/app@sha256:…)'),
    })
    .optional(),
  /** About the environment (the `Pier-Env` header names it): made on first use; a preview's TTL moves on each deploy that sets it. */
  environment: z
    .object({
      ttl: ttlSchema.optional(),
      base: z.string().max(40).optional(),
      branch: z.string().max(200).optional(),
      commit: z.string().max(64).optional(),
      pr: z.number().int().min(1).optional(),
    })
    .optional(),
});

const rollbackBody = z.object({
  /** The release to copy; default: the last one before the current that ran healthy. */
  version: z.number().int().min(1).optional(),
  description: z.string().max(500).default(''),
});

const scaleBody = z.object({
  counts: z.record(z.string(), z.number().int().min(0).max(100)).refine((c) => Object.keys(c).length > 0, 'name at least one process'),
});

describeRoute({
  method: 'post',
  path: '/v1/deploys',
  scope: 'deploy',
  summary: 'Deploy a manifest: 201 with a new release and deployment, 200 (created: false) when this manifest and image are already deployed',
  description: 'The rollout runs on the server; follow it with GET /v1/deployments/{id}. An invalid manifest is 422 E_MANIFEST_INVALID with `details: [{ path, message, line?, column? }]`.',
  body: deployBody,
  response: deployViewSchema,
  status: [201, 200],
  errors: [404, 409, 422],
});
describeRoute({
  method: 'post',
  path: '/v1/apps/:app/rollback',
  scope: 'deploy',
  summary: "Roll back: a new release copying an earlier one's manifest and exact image, rolled out like a deploy",
  body: rollbackBody,
  response: deployViewSchema,
  status: 201,
  errors: [404, 409],
});
describeRoute({
  method: 'post',
  path: '/v1/apps/:app/scale',
  scope: 'deploy',
  summary: 'Set instance counts per process (kept across deploys); idempotent',
  body: scaleBody,
  response: z.object({ app: z.string(), scale: z.record(z.string(), z.number()), changed: z.boolean() }),
  errors: [404, 409],
});
describeRoute({ method: 'get', path: '/v1/deployments/:id', scope: 'read', summary: 'A deployment and its progress', response: deploymentViewSchema, errors: [404] });

export function deployRoutes(deps: ApiDeps) {
  const { db } = deps;
  const r = new Hono<ApiEnv>();

  r.post('/deploys', async (c) => {
    requireScope(c.get('auth'), 'deploy');
    const body = parseBody(deployBody, await readJson(c.req));
    const manifest = typeof body.manifest === 'string' ? parseManifest(body.manifest, body.file) : validateManifest(body.manifest, body.file);
    if (body.build && !manifest.build) {
      throw new PierError('E_BAD_REQUEST', 'build is only for a manifest with a [build] table; this one names its image', { status: 400, hint: 'leave build out, or deploy a manifest with [build]' });
    }
    const env = body.environment;
    const result = await deps.deploys.deploy(c.get('auth'), manifest, body.description, body.build?.image, env && { ...env, ttlMs: env.ttl ? ttlMs(env.ttl) : undefined });
    const view: DeployView = {
      app: appView(result.app, result.release.version),
      release: releaseView(result.release),
      deployment: deploymentView(result.deployment, result.app.name, result.release.version),
      created: result.created,
      ...(result.environment
        ? { environment: environmentView(result.environment), endpoints: await environmentEndpoints(db, result.app.orgId, result.environment.name, deps.sharedAddresses, [result.app.id]) }
        : {}),
    };
    return c.json(view, result.created ? 201 : 200);
  });

  r.post('/apps/:app/rollback', async (c) => {
    requireScope(c.get('auth'), 'deploy');
    const body = parseBody(rollbackBody, await readJson(c.req));
    const result = await deps.deploys.rollback(c.get('auth'), c.req.param('app'), body.version, body.description);
    const view: DeployView = {
      app: appView(result.app, result.release.version),
      release: releaseView(result.release),
      deployment: deploymentView(result.deployment, result.app.name, result.release.version),
      created: true,
    };
    return c.json(view, 201);
  });

  r.post('/apps/:app/scale', async (c) => {
    requireScope(c.get('auth'), 'deploy');
    const body = parseBody(scaleBody, await readJson(c.req));
    const { app, changed } = await deps.deploys.scale(c.get('auth'), c.req.param('app'), body.counts);
    return c.json({ app: app.name, scale: app.scale, changed });
  });

  r.get('/deployments/:id', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'read');
    const row = await findDeployment(db, auth, c.req.param('id'));
    return c.json(deploymentView(row.dep, row.app.name, row.version));
  });

  return r;
}
