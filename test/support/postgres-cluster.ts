// A PostgreSQL server of the test's own, to stop and start at will (never the machine's shared
// cluster): initdb into a temp folder, pg_ctl on a free loopback port, a unix socket in that
// folder. As root, the server programs run as the `postgres` user (PostgreSQL refuses root).
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
  const port = await freePort();
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
  const start = async () => void (await pg('pg_ctl', ['-D', data, '-o', options, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']));
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

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
