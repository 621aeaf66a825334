// `npm run soak [-- --minutes N --seed S --report FILE --logs DIR]`: Pier under faults and load.
// In namespaces of its own (soak-namespace.ts) it starts its own Docker engine, PostgreSQL and
// `pier server` (this checkout's dist), deploys two apps, then for N minutes (default 10) runs
// operators (deploys, failing deploys, scale, rollback, exec, status, events; CLI and HTTP), an
// event follower and edge probes while a seeded schedule kills the engine, the database, the API
// process and the server. Then it lets Pier settle and checks releases, events and `docker ps`
// against what Pier says (soak-state-check.ts), prints the report (soak-report.ts) and exits 0
// when every check passed and nothing was found: a request answered E_INTERNAL, a process death
// the soak did not cause. Failed requests during faults are expected and only reported.
// Exit 2: the soak could not run (usage, setup); 130: interrupted.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { ensureBusyboxImage } from '../test/support/images.js';
import { APPS, IMAGE, WEB_PORT, webManifest, workerManifest } from './soak-apps.js';
import { settleAndCheck, snapshot } from './soak-checks.js';
import { createSoakClient } from './soak-client.js';
import { createSoakDockerd } from './soak-dockerd.js';
import { startFaults } from './soak-faults.js';
import { DIR_ENV, INSIDE_ENV, NETNS_FILE, runInOwnNamespaces } from './soak-namespace.js';
import { newSeen, type OpContext } from './soak-ops.js';
import { sleepUnless, startFollower, startOperators } from './soak-operators.js';
import { API_URL, createSoakPier } from './soak-pier.js';
import { createSoakPostgres, postgresMissing } from './soak-postgres.js';
import { probeOnce, startProbes } from './soak-probes.js';
import { createRandom } from './soak-random.js';
import { formatReport } from './soak-report.js';
import { checkState, type CheckResult } from './soak-state-check.js';
import { createTally } from './soak-tally.js';

const run = promisify(execFile);
const USAGE = 'usage: npm run soak [-- --minutes N (default 10) --seed S --report FILE --logs DIR]';

const started = Date.now();
const log = (line: string): void => void process.stderr.write(`[soak ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

interface Options {
  minutes: number;
  seed: number;
  report: string | undefined;
  logs: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({ args: argv, options: { minutes: { type: 'string', default: '10' }, seed: { type: 'string' }, report: { type: 'string' }, logs: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) throw new Error(USAGE);
  const minutes = Number(values.minutes);
  if (!(minutes > 0 && minutes <= 240)) throw new Error(`--minutes "${values.minutes}" is not a number of minutes from 0 to 240\n${USAGE}`);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`--seed "${values.seed}" is not a whole number\n${USAGE}`);
  return { minutes, seed, report: values.report, logs: values.logs };
}

async function inside(options: Options): Promise<number> {
  const dir = process.env[DIR_ENV] as string;
  await writeFile(join(dir, NETNS_FILE), await readlink('/proc/self/ns/net'));
  await run('ip', ['link', 'set', 'lo', 'up']);
  const missing = await postgresMissing();
  if (missing) throw new SetupError(missing);
  log(`seed ${options.seed}, ${options.minutes} min; folder ${dir}`);

  const tally = createTally(log);
  let interrupted = false;
  const stops: (() => Promise<void>)[] = [];
  const onSignal = (): void => {
    if (!interrupted) log('interrupted: stopping and cleaning up (this takes up to a minute)');
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const dockerd = createSoakDockerd({ dir: join(dir, 'docker'), onUnexpectedExit: (d) => tally.finding('process died', d) });
  const postgres = createSoakPostgres(join(dir, 'pg'), 5432, (d) => tally.finding('process died', d));
  const pier = createSoakPier({
    dir: join(dir, 'pier'),
    env: { ...process.env, DATABASE_URL: 'postgres://pier@127.0.0.1:5432/pier', DOCKER_HOST: `unix://${join(dir, 'docker', 'docker.sock')}` },
    onUnexpectedDeath: (d) => tally.finding('process died', d),
    log,
  });
  try {
    // Setup: the image, the engine, the database, the server, two apps running.
    await ensureBusyboxImage(IMAGE);
    await dockerd.start();
    await dockerd.loadImage(IMAGE);
    await postgres.init();
    await pier.start();
    const client = createSoakClient(API_URL, () => pier.cliEnv, () => pier.token());
    await mkdir(join(dir, 'manifests'));
    let rev = 0;
    for (const [name, text] of [['web', webManifest(++rev, 2)], ['worker', workerManifest(++rev)]] as const) {
      const file = join(dir, 'manifests', `${name}-setup.toml`);
      await writeFile(file, text);
      const answer = await client.cli(['deploy', '-c', file, '--wait', '120'], 180_000);
      if (answer.exit !== 0) throw new SetupError(`the first deploy of ${name} failed: ${answer.stderr}`);
    }
    log('setup done: web (2 × echo on :9000) and worker run');
    if (interrupted) return 130;

    // The run: faults, operators, follower and probes until the deadline.
    const random = createRandom(options.seed);
    const seen = newSeen();
    const until = tally.now() + options.minutes * 60_000;
    const ctx: Omit<OpContext, 'random'> = { client, tally, dir: join(dir, 'manifests'), seen, rev: () => ++rev };
    const probes = startProbes(tally, { port: WEB_PORT, intervalMs: 200, timeoutMs: 5000, maxInFlight: 25 });
    stops.push(() => probes.stop());
    const follower = startFollower(client, tally, APPS, 2000);
    stops.push(() => follower.stop());
    const operators = startOperators(ctx, random, 2, until);
    const faults = startFaults({ dockerd, postgres, pier }, tally, random.fork('faults'), { gapMs: [10_000, 40_000], until, log });
    await sleepUnless(() => interrupted || tally.now() >= until, options.minutes * 60_000 + 1000);
    log('time is up: finishing the fault in progress and the operations');
    await faults.stop();
    await operators.stop();
    if (interrupted) return 130;

    // Everything up again (a fault that could not be undone was a finding already).
    if (!dockerd.running()) await dockerd.start();
    if (!(await postgres.running())) await postgres.start();
    if (!pier.running()) await pier.start();
    log('settling: waiting for Pier to converge (at most 3 min)');
    const databaseRestarts = tally.faults.filter((f) => f.kind.startsWith('postgres')).length;
    const sources = { databaseUrl: 'postgres://pier@127.0.0.1:5432/pier', client, dockerd, seen, followed: follower.seen, databaseRestarts };
    const settled = await settleAndCheck(sources, 180_000, log);
    await follower.stop();
    await follower.poll();
    const final = await snapshot(sources);
    const checks: CheckResult[] = [...checkState(final), await edgeCheck()];
    await probes.stop();
    for (const c of checks) if (!c.ok && !c.info) tally.finding('end check failed', `${c.name}: ${c.detail}`);

    const deployments = new Map<string, number>();
    const names = new Map(final.apps.map((a) => [a.id, a.name]));
    for (const d of final.deployments) {
      const key = `${names.get(d.appId)} ${d.state}`;
      deployments.set(key, (deployments.get(key) ?? 0) + 1);
    }
    const report = formatReport({
      tally,
      seed: options.seed,
      minutes: options.minutes,
      totalMs: Date.now() - started,
      checks,
      settledMs: settled.settledMs,
      errorLines: pier.errorLines(),
      deployments,
      commit: (await run('git', ['rev-parse', '--short', 'HEAD']).catch(() => ({ stdout: 'unknown' }))).stdout.trim(),
    });
    process.stdout.write(`${report}\n`);
    if (options.report) await writeFile(options.report, `${report}\n`);
    log(tally.findings.length === 0 ? 'PASS: every end check passed, nothing found' : `FAIL: ${tally.findings.length} finding(s)`);
    return tally.findings.length === 0 ? 0 : 1;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    if (options.logs) await keepLogs(options.logs, dir);
    log('cleaning up: the server, every container, the engine, the database');
    await pier.close().catch((err: Error) => log(`pier close: ${err.message}`));
    await dockerd.close().catch((err: Error) => log(`dockerd close: ${err.message}`));
    await postgres.close().catch((err: Error) => log(`postgres close: ${err.message}`));
  }
}

/** After the run, the edge serves the app on both families: 10 probes each. */
async function edgeCheck(): Promise<CheckResult> {
  const outcomes: string[] = [];
  for (let i = 0; i < 20; i++) outcomes.push(await probeOnce(i % 2 ? '::1' : '127.0.0.1', WEB_PORT, `final ${i}\n`, 5000));
  const bad = outcomes.filter((o) => o !== 'ok');
  return { name: 'the edge serves web on 127.0.0.1 and ::1 after the run', ok: bad.length === 0, detail: bad.length ? `${bad.length} of 20 failed: ${bad.join(', ')}` : '20 of 20 echoed' };
}

async function keepLogs(to: string, dir: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const [from, name] of [[join(dir, 'pier', 'pier-server.log'), 'pier-server.log'], [join(dir, 'docker', 'dockerd.log'), 'dockerd.log'], [join(dir, 'pg', 'log'), 'postgres.log']]) {
    await copyFile(from as string, join(to, name as string)).catch(() => undefined);
  }
  log(`logs kept in ${to}`);
}

class SetupError extends Error {}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    log((err as Error).message);
    return 2;
  }
  if (process.env[INSIDE_ENV] !== '1') return runInOwnNamespaces(fileURLToPath(import.meta.url), process.argv.slice(2), log);
  try {
    return await inside(options);
  } catch (err) {
    log(`the soak could not run: ${err instanceof SetupError ? err.message : ((err as Error).stack ?? String(err))}`);
    return 2;
  }
}

// Exit here: nothing of the run may keep the process alive.
process.exit(await main());
