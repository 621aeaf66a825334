// zod schemas of the shapes the API returns, for the OpenAPI document. The type checks at the
// end fail the build when one of them and its interface in api/views.ts disagree.
import { z } from 'zod';
import { environmentEndpointViewSchema, environmentViewSchema } from './environment-views.js';
import { DEPLOYMENT_STATES, INSTANCE_DESIRED, INSTANCE_OBSERVED, ENDPOINT_ACCESS, PROXY_PROTOCOLS, TOKEN_SCOPES } from '../db/schema/index.js';
import type { AppDeletedView, AppView, DeploymentView, DeployView, EdgeView, EndpointView, ErrorBody, EventView, ExecResultView, InstanceView, IpView, LogLineView, NodeView, ReleaseView, StatusView, TokenView } from './views.js';

const time = z.string().describe('ISO 8601 time');
const counts = z.record(z.string(), z.number());

export const appViewSchema = z.object({ id: z.string(), name: z.string(), currentRelease: z.number().nullable(), createdAt: time, deletedAt: time.nullable() });

export const appDeletedViewSchema = z.object({
  app: appViewSchema,
  instances: z.number().describe('instances told to stop'),
  ports: z.array(z.number()).describe('public ports freed'),
  addresses: z.array(z.string()).describe('dedicated addresses released (they cool down before another app gets them)'),
  tokensRevoked: z.number(),
  deploymentsCancelled: z.array(z.string()),
  containersRemaining: z.number().nullable().describe('containers still on the engine when the wait ended; null when the engine did not answer'),
});

export const releaseViewSchema = z.object({
  id: z.string(),
  version: z.number(),
  image: z.string(),
  imageDigest: z.string(),
  description: z.string(),
  createdAt: time,
});

export const deploymentViewSchema = z.object({
  id: z.string(),
  app: z.string(),
  release: z.number(),
  state: z.enum(DEPLOYMENT_STATES),
  progress: z.object({ desired: counts, running: counts }),
  failureReason: z.string().nullable(),
  failure: z.record(z.string(), z.unknown()).nullable(),
  createdAt: time,
  finishedAt: time.nullable(),
});

export const instanceViewSchema = z.object({
  id: z.string(),
  process: z.string(),
  release: z.number(),
  desired: z.enum(INSTANCE_DESIRED),
  state: z.enum(INSTANCE_OBSERVED),
  health: z.string(),
  containerId: z.string().nullable(),
  node: z.string().describe('the node (Docker engine) it runs on: "local" on a single engine'),
  address: z.string().nullable().describe("the container's address on Pier's network"),
  restartCount: z.number(),
  lastExitCode: z.number().nullable(),
  lastReason: z.string().nullable(),
  startedAt: time.nullable(),
  stoppedAt: time.nullable(),
});

export const servedSchema = z.object({
  state: z.enum(['served', 'failed', 'pending', 'no-edge', 'private']),
  reason: z.string().nullable().describe('why it is not served: the edge, address:port and error'),
  hint: z.string().nullable(),
  edges: z.array(
    z.object({
      edge: z.string(),
      name: z.string(),
      state: z.enum(['serving', 'failed', 'pending']),
      revision: z.number().nullable(),
      failures: z.array(z.object({ address: z.string(), port: z.number(), code: z.string(), message: z.string(), retryAt: z.string().nullable() })),
    }),
  ),
});

export const endpointViewSchema = z.object({
  id: z.string(),
  name: z.string().describe('app/port'),
  port: z.number(),
  process: z.string(),
  target: z.number(),
  proxyProtocol: z.enum(PROXY_PROTOCOLS),
  access: z.enum(ENDPOINT_ACCESS).describe('"private": bound on no address, reached only through `pier port-forward` / `pier connect`'),
  addresses: z.array(z.string()),
  bind: z.array(z.object({ address: z.string(), port: z.number(), family: z.enum(['ipv4', 'ipv6']), kind: z.enum(['shared', 'dedicated']) })).describe('one entry per address the endpoint is served on'),
  revision: z.number(),
  served: servedSchema,
});

export const ipViewSchema = z.object({
  address: z.string(),
  family: z.enum(['ipv4', 'ipv6']),
  kind: z.enum(['shared', 'dedicated']).describe("shared: the edge's, every app's; dedicated: one app's, from a pool"),
  pool: z.string().nullable().describe('the CIDR it came from (dedicated)'),
  app: z.string().nullable().describe('its app while allocated'),
  state: z
    .enum(['shared', 'allocated', 'releasing', 'cooling', 'free'])
    .describe('releasing: released with its deleted app, waiting for the edges to stop serving it (reusableAt is the latest it can be); cooling: released, not given to another app before reusableAt'),
  allocatedAt: time.nullable(),
  releasedAt: time.nullable(),
  reusableAt: time.nullable(),
  awaitingEdges: z.array(z.string()).describe('while releasing: the edges (names) that have not yet confirmed they stopped serving it'),
});

export const edgeViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  pid: z.number(),
  workers: z.number(),
  io: z.string().nullable(),
  live: z.boolean(),
  applied: z.number().nullable(),
  current: z.boolean(),
  lastReportAgeSeconds: z.number(),
  firstSeenAt: time,
  lastSeenAt: time,
  lastError: z.string().nullable(),
  endpoints: z.object({ total: z.number(), serving: z.number(), failed: z.number() }),
  failures: z.array(
    z.object({ endpoint: z.string(), name: z.string(), address: z.string(), port: z.number(), code: z.string(), message: z.string(), retryAt: z.string().nullable() }),
  ),
});

export const eventViewSchema = z.object({
  id: z.number(),
  time,
  app: z.string().describe("the app's name; empty for a system event"),
  type: z.string(),
  reason: z.string(),
  message: z.string(),
  instance: z.string().nullable(),
  deployment: z.string().nullable(),
  data: z.record(z.string(), z.unknown()),
});

const countSourceSchema = z.union([
  z.object({ from: z.literal('manifest'), release: z.number() }),
  z.object({ from: z.literal('scale'), at: time.nullable() }),
  z.object({ from: z.literal('default'), release: z.number() }),
]);

export const processViewSchema = z.object({
  process: z.string(),
  desired: z.number(),
  desiredFrom: countSourceSchema.describe("the manifest's count (that release), `pier scale` (when), or the default of 1"),
  ready: z.number(),
  check: z.string().nullable().describe('the check instances run under; the implicit readiness check when the manifest declares none'),
});

export const statusViewSchema = z.object({
  app: appViewSchema,
  release: releaseViewSchema.nullable(),
  processes: z.array(processViewSchema),
  deployment: deploymentViewSchema.nullable(),
  instances: z.array(instanceViewSchema),
  endpoints: z.array(endpointViewSchema),
});

export const deployViewSchema = z.object({
  app: appViewSchema,
  release: releaseViewSchema,
  deployment: deploymentViewSchema,
  created: z.boolean(),
  environment: environmentViewSchema.optional(),
  endpoints: z.array(environmentEndpointViewSchema).optional(),
});

export const errorBodySchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional(), details: z.unknown().optional() }),
});

export const logLineViewSchema = z.object({
  time,
  instance: z.string(),
  process: z.string(),
  release: z.number(),
  stream: z.enum(['stdout', 'stderr']),
  line: z.string(),
});

export const execResultViewSchema = z.object({ exitCode: z.number(), stdout: z.string(), stderr: z.string(), truncated: z.boolean() });

export const tokenViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  scope: z.enum(TOKEN_SCOPES),
  app: z.string().nullable(),
  environments: z.string().optional().describe('the environment pattern it is bound to (`pr-*`)'),
  createdAt: time,
  expiresAt: time.nullable(),
  revokedAt: time.nullable(),
  lastUsedAt: time.nullable().describe('kept to the minute'),
});

/** A page of a list: the items under their name, and the cursor of the next page (null at the end). */
export function pageSchema<K extends string, T extends z.ZodType>(key: K, item: T) {
  return z.object({ [key]: z.array(item), next_cursor: z.string().nullable().describe('pass as `cursor` for the next page; null on the last') } as Record<K, z.ZodArray<T>> & {
    next_cursor: z.ZodNullable<z.ZodString>;
  });
}

export const nodeViewSchema = z.object({
  id: z.string(),
  name: z.string().describe('"local" on one engine; the host name on a swarm'),
  address: z.string().describe("where its instances are reached (a swarm node's address)"),
  state: z.string().describe('ready, down, unknown or disconnected'),
  availability: z.enum(['active', 'pause', 'drain']),
  role: z.enum(['engine', 'manager', 'worker']),
  labels: z.record(z.string(), z.string()),
  capacity: z.object({ cpus: z.number(), memoryBytes: z.number() }).nullable(),
  engineVersion: z.string().nullable(),
  instances: z.number().describe("Pier's instances that run there now"),
});

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const agree: [
  Same<z.infer<typeof appViewSchema>, AppView>,
  Same<z.infer<typeof appDeletedViewSchema>, AppDeletedView>,
  Same<z.infer<typeof releaseViewSchema>, ReleaseView>,
  Same<z.infer<typeof deploymentViewSchema>, DeploymentView>,
  Same<z.infer<typeof instanceViewSchema>, InstanceView>,
  Same<z.infer<typeof endpointViewSchema>, EndpointView>,
  Same<z.infer<typeof eventViewSchema>, EventView>,
  Same<z.infer<typeof statusViewSchema>, StatusView>,
  Same<z.infer<typeof deployViewSchema>, DeployView>,
  Same<z.infer<typeof errorBodySchema>, ErrorBody>,
  Same<z.infer<typeof logLineViewSchema>, LogLineView>,
  Same<z.infer<typeof execResultViewSchema>, ExecResultView>,
  Same<z.infer<typeof tokenViewSchema>, TokenView>,
  Same<z.infer<typeof edgeViewSchema>, EdgeView>,
  Same<z.infer<typeof ipViewSchema>, IpView>,
  Same<z.infer<typeof nodeViewSchema>, NodeView>,
] = [true, true, true, true, true, true, true, true, true, true, true, true, true, true, true, true];
void agree;
