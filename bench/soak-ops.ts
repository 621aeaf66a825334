// The operations the soak's operators run: deploys (valid ones, and ones that must fail), scale,
// rollback, exec, status, events and app listings, through the CLI or the HTTP API. Each records
// one request per call in the tally (ok, expected, or failed with its code) and what it changed in
// `Seen`, which the end checks hold against Pier's state.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DeploymentView, DeployView, StatusView } from '../api/views.js';
import { crashyManifest, ghostManifest, webManifest, workerManifest } from './soak-apps.js';
import type { CliAnswer, HttpAnswer, SoakClient } from './soak-client.js';
import type { Random } from './soak-random.js';
import type { RequestOutcome, Tally } from './soak-tally.js';

/** What the soak's requests were told they changed. */
export interface Seen {
  /** Deployments the API said it made or has, by id: app and release version. */
  deployments: Map<string, { app: string; version: number }>;
  /** Scale answers with changed: true, per app. */
  scaled: Map<string, number>;
  /** Execs that ran (exit code 0 and the expected output), per app. */
  execs: Map<string, number>;
}

export interface OpContext {
  client: SoakClient;
  tally: Tally;
  random: Random;
  dir: string;
  seen: Seen;
  /** A new SOAK_REV. */
  rev(): number;
}

export type Op = (ctx: OpContext) => Promise<void>;

export function newSeen(): Seen {
  return { deployments: new Map(), scaled: new Map(), execs: new Map() };
}

/**
 * Records one answer, at the time it came (a deploy that waited fails when the server goes away,
 * not when it was sent); `expected` codes are refusals the operation must get in that situation.
 */
function record(ctx: OpContext, kind: string, answer: HttpAnswer | CliAnswer, expected: readonly string[] = []): RequestOutcome {
  const outcome: RequestOutcome = answer.code === null ? 'ok' : expected.includes(answer.code) ? 'expected' : 'failed';
  ctx.tally.request({ kind, outcome, code: answer.code, message: answer.message, ms: answer.ms });
  return outcome;
}

function parsed<T>(text: string): T | null {
  try {
    return JSON.parse(text) as T;
  } catch {
    return null;
  }
}

function noteDeployment(ctx: OpContext, stdout: string): void {
  // No JSON: the command failed before it had a deployment.
  const d = parsed<DeploymentView>(stdout);
  if (typeof d?.id === 'string') ctx.seen.deployments.set(d.id, { app: d.app, version: d.release });
}

async function manifestFile(ctx: OpContext, name: string, text: string): Promise<string> {
  const file = join(ctx.dir, `${name}.toml`);
  await writeFile(file, text);
  return file;
}

const deployWeb: Op = async (ctx) => {
  const rev = ctx.rev();
  const file = await manifestFile(ctx, `web-${rev}`, webManifest(rev));
  const answer = await ctx.client.cli(['deploy', '-c', file, '--json', '--wait', '90', '-m', 'soak'], 150_000);
  noteDeployment(ctx, answer.stdout);
  // Two operators deploy web: one rollout may replace the other's before it finished.
  record(ctx, 'deploy web (cli, waits)', answer, ['E_DEPLOY_SUPERSEDED']);
};

const deployWorker: Op = async (ctx) => {
  const answer = await ctx.client.http('POST', '/v1/deploys', { manifest: workerManifest(ctx.rev()), description: 'soak' });
  record(ctx, 'deploy worker (http)', answer);
  const view = answer.body as DeployView | null;
  if (answer.code !== null || !view?.deployment) return;
  ctx.seen.deployments.set(view.deployment.id, { app: 'worker', version: view.release.version });
  // Follow it like a client would, bounded.
  for (let i = 0; i < 90; i++) {
    const d = await ctx.client.http('GET', `/v1/deployments/${view.deployment.id}`);
    record(ctx, 'deployment (http)', d);
    if ((d.body as DeploymentView | null)?.state !== 'running' && d.code === null) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
};

const deployCrashy: Op = async (ctx) => {
  const rev = ctx.rev();
  const file = await manifestFile(ctx, `crashy-${rev}`, crashyManifest(rev));
  const answer = await ctx.client.cli(['deploy', '-c', file, '--json', '--wait', '90'], 150_000);
  noteDeployment(ctx, answer.stdout);
  if (answer.exit === 0) ctx.tally.finding('must-fail deploy succeeded', `a deploy of crashy (its process exits 3 at once) exited 0:\n${answer.stderr.slice(-500)}`);
  record(ctx, 'deploy crashy (cli, must fail)', answer, ['E_DEPLOY_FAILED', 'E_DEPLOY_SUPERSEDED']);
};

const deployGhost: Op = async (ctx) => {
  const answer = await ctx.client.http('POST', '/v1/deploys', { manifest: ghostManifest(ctx.rev()), description: 'soak: missing image' });
  if (answer.code === null) ctx.tally.finding('must-fail deploy succeeded', `a deploy of ghost (image pier-test/missing:1) was accepted: ${answer.status}`);
  record(ctx, 'deploy ghost (http, must fail)', answer, ['E_IMAGE_NOT_FOUND']);
};

const scaleWeb: Op = async (ctx) => {
  const answer = await ctx.client.cli(['scale', `echo=${ctx.random.int(1, 3)}`, '--app', 'web', '--json'], 60_000);
  if (answer.code === null && parsed<{ changed?: boolean }>(answer.stdout)?.changed) ctx.seen.scaled.set('web', (ctx.seen.scaled.get('web') ?? 0) + 1);
  record(ctx, 'scale web (cli)', answer);
};

const scaleWorker: Op = async (ctx) => {
  const answer = await ctx.client.http('POST', '/v1/apps/worker/scale', { counts: { loop: ctx.random.int(0, 2) } });
  if (answer.code === null && (answer.body as { changed?: boolean }).changed) ctx.seen.scaled.set('worker', (ctx.seen.scaled.get('worker') ?? 0) + 1);
  record(ctx, 'scale worker (http)', answer);
};

const rollbackWeb: Op = async (ctx) => {
  const answer = await ctx.client.cli(['rollback', '--app', 'web', '--detach', '--json', '-m', 'soak'], 60_000);
  noteDeployment(ctx, answer.stdout);
  record(ctx, 'rollback web (cli)', answer, ['E_NO_ROLLBACK_TARGET']);
};

/** A running instance of web or worker, as the API lists it; null when none runs. */
async function runningInstance(ctx: OpContext): Promise<{ app: string; id: string } | null> {
  const app = ctx.random.pick(['web', 'worker']);
  const answer = await ctx.client.http('GET', `/v1/apps/${app}`);
  record(ctx, 'status (http)', answer);
  const running = (answer.body as StatusView | null)?.instances?.filter((i) => i.state === 'running') ?? [];
  return running.length === 0 ? null : { app, id: ctx.random.pick(running).id };
}

/** The instance may stop between the listing and the exec: those refusals are expected. */
const RACED = ['E_INSTANCE_NOT_RUNNING', 'E_INSTANCE_NOT_FOUND'];

const execHttp: Op = async (ctx) => {
  const target = await runningInstance(ctx);
  if (target === null) return;
  const word = `soak-${ctx.rev()}`;
  const answer = await ctx.client.http('POST', `/v1/apps/${target.app}/instances/${target.id}/exec`, { cmd: ['echo', word], timeoutMs: 20_000 });
  const result = answer.body as { exitCode?: number; stdout?: string } | null;
  if (answer.code === null) {
    if (result?.exitCode === 0 && result.stdout === `${word}\n`) ctx.seen.execs.set(target.app, (ctx.seen.execs.get(target.app) ?? 0) + 1);
    else ctx.tally.finding('exec returned a wrong result', `echo ${word} in ${target.id}: ${JSON.stringify(result).slice(0, 300)}`);
  }
  record(ctx, 'exec (http)', answer, RACED);
};

const execCli: Op = async (ctx) => {
  const target = await runningInstance(ctx);
  if (target === null) return;
  const word = `soak-${ctx.rev()}`;
  const answer = await ctx.client.cli(['exec', '--app', target.app, target.id, '--timeout', '20', '--', 'echo', word], 60_000);
  if (answer.code === null) {
    if (answer.stdout === `${word}\n`) ctx.seen.execs.set(target.app, (ctx.seen.execs.get(target.app) ?? 0) + 1);
    else ctx.tally.finding('exec returned a wrong result', `pier exec … echo ${word} in ${target.id} printed ${JSON.stringify(answer.stdout.slice(0, 200))}`);
  }
  record(ctx, 'exec (cli)', answer, RACED);
};

const statusCli: Op = async (ctx) => {
  record(ctx, 'status (cli)', await ctx.client.cli(['status', '--json'], 60_000));
};

const eventsCli: Op = async (ctx) => {
  record(ctx, 'events (cli)', await ctx.client.cli(['events', '--app', ctx.random.pick(['web', 'worker']), '--json'], 60_000));
};

const appsHttp: Op = async (ctx) => {
  record(ctx, 'apps (http)', await ctx.client.http('GET', '/v1/apps'));
};

/** The operations and how often each is picked. */
export const OPS: readonly (readonly [Op, number])[] = [
  [deployWeb, 10],
  [deployWorker, 6],
  [deployCrashy, 3],
  [deployGhost, 3],
  [scaleWeb, 8],
  [scaleWorker, 5],
  [rollbackWeb, 4],
  [execHttp, 8],
  [execCli, 3],
  [statusCli, 6],
  [eventsCli, 4],
  [appsHttp, 3],
];
