// A PostgreSQL server of the test's own, to stop and start at will (never the machine's shared
// cluster): initdb into a temp folder, pg_ctl on a free loopback port below the kernel's
// ephemeral range, a unix socket in that folder. As root, the server programs run as the `postgres` user (PostgreSQL refuses root).
// Stopped (by pg_ctl, then by its PID) and removed in t.after.
import type { TestContext } from 'node:test';
import { execFile } from 'node:child_process';
import { access, chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';

export interface PostgresCluster {
  /** `postgres://pier@127.0.0.1:PORT/pier`. */
  url: string;
  port: number;
  /** The postmaster's PID while it runs, else null. */
  pid(): Promise<number | null>;
  /** Fast shutdown (`pg_ctl stop -m fast`): clients are disconnected. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Null (with the reason) when this machine has no PostgreSQL 15 server programs. */
export async function postgresProgramsMissing(): Promise<string | null> {
  try {
    await access(join(BIN, 'initdb'));
    await access(join(BIN, 'pg_ctl'));
    return null;
  } catch {
    return `no PostgreSQL 15 server programs in ${BIN} (apt-get install postgresql-15)`;
  }
}

export async function startPostgresCluster(t: TestContext): Promise<PostgresCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'pier-pg-'));
  const asRoot = process.getuid?.() === 0;
  let uid = process.getuid?.() ?? 0;
  if (asRoot) {
    uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
    await chown(dir, uid, gid);
  }
  const pg = (program: string, args: string[]) =>
    asRoot ? run('runuser', ['-u', 'postgres', '--', join(BIN, program), ...args], { cwd: dir }) : run(join(BIN, program), args, { cwd: dir });
  const data = join(dir, 'data');
  const port = await portOutsideEphemeralRange();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;

  t.after(async () => {
    await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop']).catch(() => undefined);
    const pid = await postmasterPid(data);
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await rm(dir, { recursive: true, force: true });
  });

  await pg('initdb', ['-D', data, '-U', 'pier', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  const log = join(dir, 'log');
  const start = async () => {
    try {
      await pg('pg_ctl', ['-D', data, '-o', options, '-l', log, '-w', '-t', '60', 'start']);
    } catch (err) {
      const tail = (await readFile(log, 'utf8').catch(() => '')).split('\n').slice(-15).join('\n');
      throw new Error(`${(err as Error).message}\nlast lines of ${log}:\n${tail}`);
    }
  };
  await start();
  await pg('createdb', ['-h', dir, '-p', String(port), '-U', 'pier', 'pier']);
  return {
    url: `postgres://pier@127.0.0.1:${port}/pier`,
    port,
    pid: () => postmasterPid(data),
    stop: async () => void (await pg('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop'])),
    start,
  };
}

async function postmasterPid(data: string): Promise<number | null> {
  const text = await readFile(join(data, 'postmaster.pid'), 'utf8').catch(() => null);
  const pid = Number(text?.split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/**
 * A free loopback port below the kernel's ephemeral range. The cluster is stopped and started on
 * the same port while other tests open connections: a port from the ephemeral range (what port 0
 * gives) can meanwhile become the local port of someone's outgoing connection, and the restart
 * then fails to bind ("could not bind IPv4 address").
 */
async function portOutsideEphemeralRange(): Promise<number> {
  const range = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').catch(() => '32768 60999');
  const low = Number(range.trim().split(/\s+/)[0]) || 32768;
  const floor = Math.min(20_000, low - 1000);
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = floor + Math.floor(Math.random() * (low - floor));
    if (await bindable(port)) return port;
  }
  throw new Error(`no free loopback port between ${floor} and ${low}`);
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
