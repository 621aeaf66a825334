// One container of an app's release and process group. Desired state (what the scheduler wants)
// and observed state (what Docker last said) are separate columns, with the last reason it changed.
import { boolean, index, integer, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, time, updatedAt } from './columns.js';
import { apps } from './apps.js';
import { releases } from './releases.js';
import { nodes } from './nodes.js';

export const INSTANCE_DESIRED = ['running', 'stopped'] as const;
export const INSTANCE_OBSERVED = ['starting', 'running', 'exited', 'stopped', 'failed'] as const;
export const INSTANCE_HEALTH = ['none', 'starting', 'healthy', 'unhealthy'] as const;
export type InstanceHealth = (typeof INSTANCE_HEALTH)[number];
export type InstanceObserved = (typeof INSTANCE_OBSERVED)[number];

export const instances = pgTable(
  'instances',
  {
  /** Readable and unique: `<app>-<process>-<random>`; also the container name. */
  id: text('id').primaryKey(),
  appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
  releaseId: text('release_id').notNull().references(() => releases.id, { onDelete: 'cascade' }),
  process: text('process').notNull(),
  nodeId: text('node_id').notNull().references(() => nodes.id),
  containerId: text('container_id'),
  desiredState: text('desired_state', { enum: INSTANCE_DESIRED }).notNull().default('running'),
  observedState: text('observed_state', { enum: INSTANCE_OBSERVED }).notNull().default('starting'),
  /** none (no check) | starting | healthy | unhealthy */
  health: text('health', { enum: INSTANCE_HEALTH }).notNull().default('none'),
  /** Output of the last check that changed the health, e.g. "GET /healthz: 500". */
  healthOutput: text('health_output'),
  healthChangedAt: time('health_changed_at'),
  /** Set when the instance left the route table to stop: it is stopped after this time. */
  drainUntil: time('drain_until'),
  restartCount: integer('restart_count').notNull().default(0),
  lastExitCode: integer('last_exit_code'),
  lastOom: boolean('last_oom').notNull().default(false),
  lastReason: text('last_reason'),
  /**
   * The container's address on Pier's network (PIER_NETWORK): the edge and the checks connect
   * to it at the container's own ports; nothing is published on the host.
   */
  address: text('address'),
  /**
   * On a swarm: container port → the port its task is published on (host mode) at `address`, the
   * node's address. Null on one engine, where the container's own ports are reached.
   */
  ports: jsonb('ports').$type<Record<string, number>>(),
  /**
   * Its addresses on its private network as the names round (api/private/private-names.ts) last
   * found them: a server that cannot inspect the container after a restart keeps admitting them
   * in the firewall until it can. Of the container `container` (a new container has new ones).
   * Null when it is on none.
   */
  privateEndpoint: jsonb('private_endpoint').$type<{ container: string; network: string; ipv4: string | null; ipv6: string | null }>(),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
  startedAt: time('started_at'),
  stoppedAt: time('stopped_at'),
  },
  // A reconcile pass reads one app's rows; the table keeps every instance an app ever had.
  (t) => [index('instances_app_id').on(t.appId)],
);

export type Instance = typeof instances.$inferSelect;
