// The OpenAPI 3.1 document of the HTTP API, built from a registry that each route file fills with
// `describeRoute()` next to its routes, using the zod schemas those routes parse with — so the
// document cannot drift from the validation. test/api/openapi.test.ts checks it against app.routes.
import { z } from 'zod';
import type { TokenScope } from '../db/schema/index.js';
import { errorBodySchema } from './view-schemas.js';

type JsonSchema = Record<string, unknown>;

export interface RouteDoc {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** The full path as Hono writes it, e.g. `/v1/apps/:app`. */
  path: string;
  /** The scope a token needs; null for routes without authentication. */
  scope: TokenScope | 'any' | null;
  summary: string;
  description?: string;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The success body: a zod schema, or a JSON Schema for shapes without one. */
  response?: z.ZodType | JsonSchema;
  /** The success status (default 200); a second one, e.g. 200 beside 201, may be listed too. */
  status?: number | number[];
  /** Content type of the success body (default application/json). */
  contentType?: string;
  /** Error statuses worth naming besides 400/401/403 (e.g. 404, 409, 422). */
  errors?: number[];
}

const registry: RouteDoc[] = [];

/** Adds a route to the document; call it once per route, at module level beside its definition. */
export function describeRoute(doc: RouteDoc): void {
  registry.push(doc);
}

export function documentedRoutes(): readonly RouteDoc[] {
  return registry;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  400: 'The request is not valid (E_BAD_REQUEST)',
  401: 'No token, or an unknown, revoked or expired one (E_UNAUTHENTICATED)',
  403: "The token's scope does not allow this (E_FORBIDDEN)",
  404: 'Not found, or not visible to this token',
  409: 'Conflicts with the current state',
  422: 'Understood but not acceptable (E_MANIFEST_INVALID, E_IDEMPOTENCY_KEY_REUSED, …)',
  503: 'Not ready, or the container engine is unreachable',
  504: 'Timed out',
};

export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const sorted = [...registry].sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
  for (const route of sorted) {
    const path = route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    (paths[path] ??= {})[route.method] = operation(route);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Pier API',
      version,
      description:
        'The HTTP API of Pier. Every route under /v1 needs `Authorization: Bearer TOKEN`. Every error has the shape `{ "error": { code, message, hint?, details? } }`. ' +
        'Lists take `limit` and an opaque `cursor` and return `next_cursor` (null on the last page). Mutating POSTs take an `Idempotency-Key` header: a retry with the same key and body gets the first answer again (header `idempotent-replayed: true`); the same key with another request is refused with 422 E_IDEMPOTENCY_KEY_REUSED.',
    },
    servers: [{ url: 'http://127.0.0.1:7700' }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token (`pier_…`)' } },
      schemas: { Error: jsonSchema(errorBodySchema, 'output') },
      responses: { Error: { description: 'An error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } } },
    },
    paths,
  };
}

function operation(route: RouteDoc): Record<string, unknown> {
  const parameters: Record<string, unknown>[] = [];
  for (const m of route.path.matchAll(/:([A-Za-z0-9_]+)/g)) {
    parameters.push({ name: m[1], in: 'path', required: true, schema: { type: 'string' } });
  }
  if (route.query) {
    const schema = jsonSchema(route.query, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
    for (const [name, property] of Object.entries(schema.properties ?? {})) {
      const { description, ...rest } = property;
      parameters.push({ name, in: 'query', required: schema.required?.includes(name) ?? false, ...(description ? { description } : {}), schema: rest });
    }
  }
  if (route.method === 'post' && route.scope !== null) {
    parameters.push({
      name: 'Idempotency-Key',
      in: 'header',
      required: false,
      description: 'Makes a retry safe: the same key and body get the first answer again; the same key with another body is 422 E_IDEMPOTENCY_KEY_REUSED. Up to 200 characters (a UUID).',
      schema: { type: 'string', maxLength: 200 },
    });
  }
  const statuses = route.status === undefined ? [200] : Array.isArray(route.status) ? route.status : [route.status];
  const contentType = route.contentType ?? 'application/json';
  const body = route.response === undefined ? { type: 'object' } : route.response instanceof z.ZodType ? jsonSchema(route.response, 'output') : route.response;
  const responses: Record<string, unknown> = {};
  for (const s of statuses) responses[String(s)] = { description: STATUS_TEXT[s] ?? 'Success', content: { [contentType]: { schema: body } } };
  const errors = new Set<number>(route.scope === null ? [] : [401, 403]);
  if (route.query || route.body) errors.add(400);
  for (const e of route.errors ?? []) errors.add(e);
  for (const e of [...errors].sort()) responses[String(e)] = { $ref: '#/components/responses/Error' };
  responses.default = { $ref: '#/components/responses/Error' };
  return {
    operationId: operationId(route),
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    ...(route.scope === null ? { security: [] } : { security: [{ bearer: [] }], 'x-pier-scope': route.scope }),
    ...(parameters.length ? { parameters } : {}),
    ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } } } : {}),
    responses,
  };
}

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/** `get /v1/apps/:app/releases` → `getAppsAppReleases`. */
function operationId(route: RouteDoc): string {
  const words = route.path
    .replace(/^\/v1/, '')
    .split(/[/.]/)
    .filter(Boolean)
    .map((w) => w.replace(/^:/, '').replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : '')));
  return route.method + words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
}
