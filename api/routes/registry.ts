// Registry garbage collection on demand: POST /v1/registry/gc (the server's own admin org, an
// org-wide admin token) runs one collection, or with dryRun only says what it would remove.
// The periodic one (registry-gc-task.ts) runs the same thing.
import { Hono } from 'hono';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.js';
import { requireScope, type ApiEnv } from '../auth.js';
import { describeRoute } from '../openapi.js';
import { PierError } from '../pier-error.js';
import { parseBody, readJson } from '../request.js';

const gcBody = z.object({ dryRun: z.boolean().default(false).describe('only list what would be removed') });

const gcItem = z.object({
  image: z.string(),
  repository: z.string(),
  digest: z.string(),
  reason: z.enum(['past-retention', 'app-deleted', 'never-deployed']),
  releases: z.array(z.string()),
  bytes: z.number(),
});

describeRoute({
  method: 'post',
  path: '/v1/registry/gc',
  scope: 'admin',
  summary: "Garbage-collect Pier's registry: delete the images past those Pier keeps, then reclaim their storage",
  description:
    "Needs an org-wide admin token of the server's own org. Keeps per live app the images of its newest --registry-keep releases, its current one and any with a running instance, and every image pushed within --registry-gc-grace. Pier's own registry is stopped while its blobs are reclaimed (builds wait, pulls get 503 meanwhile). 503 E_REGISTRY_UNAVAILABLE without a registry.",
  body: gcBody,
  response: z.object({ registry: z.enum(['local', 'external']), dryRun: z.boolean(), removed: z.array(gcItem), kept: z.number(), bytesFreed: z.number().nullable(), blobsCollected: z.boolean() }),
  errors: [403, 503],
});

export function registryRoutes(deps: ApiDeps) {
  const r = new Hono<ApiEnv>();
  r.post('/registry/gc', async (c) => {
    const auth = c.get('auth');
    requireScope(auth, 'admin');
    const gc = deps.registryGc;
    if (auth.appId !== null || (gc && gc.ownerOrgId() !== auth.orgId)) {
      throw new PierError('E_FORBIDDEN', "registry garbage collection spans every org: it needs an org-wide admin token of the server's own org", {
        status: 403,
        hint: 'use the admin token `pier server` wrote in its data folder',
      });
    }
    if (!gc) {
      throw new PierError('E_REGISTRY_UNAVAILABLE', 'this server runs without an image registry (--registry off): there is nothing to collect', {
        status: 503,
        hint: 'start pier server with --registry local (the default) or --registry URL',
      });
    }
    const body = parseBody(gcBody, await readJson(c.req));
    return c.json(await gc.run({ dryRun: body.dryRun }));
  });
  return r;
}
