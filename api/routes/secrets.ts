// Secrets of an app in the request's environment (`Pier-Env`): names, versions and digests out;
// values only in. Every route here is audited without its arguments (api/audit.ts).
import { Hono } from 'hono';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.js';
import type { ApiEnv } from '../auth.js';
import { secretViewSchema } from '../environment-views.js';
import { describeRoute } from '../openapi.js';
import { parseBody, readJson } from '../request.js';
import type { SecretService } from '../secret-service.js';
import { releaseViewSchema } from '../view-schemas.js';
import { releaseView } from '../views.js';

const setBody = z.object({
  /** KEY → value; null unsets the key. */
  secrets: z.record(z.string().max(128), z.string().max(65536).nullable()).refine((s) => Object.keys(s).length > 0 && Object.keys(s).length <= 100, 'name 1 to 100 keys'),
});
const copyBody = z.object({ from: z.string().max(40), keys: z.array(z.string().max(128)).min(1).max(100) });
const changedView = z.object({ changed: z.array(z.string()), release: releaseViewSchema.nullable().describe('the release that rolls the change out (null: nothing changed, or nothing deployed yet)') });

describeRoute({ method: 'get', path: '/v1/apps/:app/secrets', scope: 'read', summary: "The app's secrets in the environment: names, versions and digests (never values)", response: z.object({ secrets: z.array(secretViewSchema) }), errors: [404] });
describeRoute({
  method: 'post',
  path: '/v1/apps/:app/secrets',
  scope: 'deploy',
  summary: 'Set or unset secrets; a change makes a new release of the running one (rolled out like a deploy)',
  body: setBody,
  response: changedView,
  errors: [400, 404],
});
describeRoute({ method: 'post', path: '/v1/apps/:app/secrets/copy', scope: 'deploy', summary: 'Copy named secrets of the same app from another environment into this one', body: copyBody, response: changedView, errors: [400, 403, 404] });

export function secretRoutes(deps: ApiDeps & { secrets: SecretService }) {
  const r = new Hono<ApiEnv>();

  r.get('/apps/:app/secrets', async (c) => {
    return c.json({ secrets: await deps.secrets.list(c.get('auth'), c.req.param('app')) });
  });

  r.post('/apps/:app/secrets', async (c) => {
    const body = parseBody(setBody, await readJson(c.req));
    const result = await deps.secrets.set(c.get('auth'), c.req.param('app'), body.secrets);
    return c.json({ changed: result.changed, release: result.release ? releaseView(result.release.release) : null });
  });

  r.post('/apps/:app/secrets/copy', async (c) => {
    const body = parseBody(copyBody, await readJson(c.req));
    const result = await deps.secrets.copy(c.get('auth'), c.req.param('app'), body.from, body.keys);
    return c.json({ changed: result.changed, release: result.release ? releaseView(result.release.release) : null });
  });

  return r;
}
