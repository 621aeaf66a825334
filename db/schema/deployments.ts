// One rollout of a release. The scheduler moves it from `running` to `succeeded` or `failed`
// and records why; a newer deployment of the same app marks an unfinished one `superseded`, and
// deleting the app marks it `cancelled`.
import { index, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, id, time, updatedAt } from './columns.js';
import { apps } from './apps.js';
import { releases } from './releases.js';

export const DEPLOYMENT_STATES = ['running', 'succeeded', 'failed', 'superseded', 'cancelled'] as const;
export type DeploymentState = (typeof DEPLOYMENT_STATES)[number];

export interface DeploymentProgress {
  /** Instances of the release wanted, per process. */
  desired: Record<string, number>;
  /** Instances of the release running, per process. */
  running: Record<string, number>;
}

export const deployments = pgTable(
  'deployments',
  {
  id: id(),
  appId: text('app_id').notNull().references(() => apps.id, { onDelete: 'cascade' }),
  releaseId: text('release_id').notNull().references(() => releases.id, { onDelete: 'cascade' }),
  /** The release that served before; a failed rollout puts it back. */
  previousReleaseId: text('previous_release_id'),
  strategy: text('strategy').notNull().default('rolling'),
  state: text('state', { enum: DEPLOYMENT_STATES }).notNull().default('running'),
  progress: jsonb('progress').$type<DeploymentProgress>().notNull().default({ desired: {}, running: {} }),
  failureReason: text('failure_reason'),
  /** Structured evidence of the failure: instance, exit code, OOM, last log lines. */
  failure: jsonb('failure').$type<Record<string, unknown>>(),
  /** The rollout fails when it has not completed by then. */
  deadline: time('deadline').notNull(),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
  finishedAt: time('finished_at'),
  },
  (t) => [index('deployments_app_id').on(t.appId, t.createdAt)],
);

export type Deployment = typeof deployments.$inferSelect;
