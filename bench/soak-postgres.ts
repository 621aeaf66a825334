// The soak's own PostgreSQL cluster, which it stops and starts (never the machine's): initdb into
// the soak's folder, pg_ctl on a fixed port inside the soak's network namespace (nothing else
// listens there), its unix socket in that folder. As root, the server programs run as `postgres`.
// pg_ctl runs in a session of its own, so a Ctrl-C reaches the soak and not the postmaster.
import { execFile } from 'node:child_process';
import { access, chown, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = '/usr/lib/postgresql/15/bin';

export interface SoakPostgres {
  /** `postgres://pier@127.0.0.1:PORT/pier`. */
  url: string;
  init(): Promise<void>;
  start(): Promise<void>;
  /** `pg_ctl stop -m MODE`: immediate is a crash (recovery at the next start), fast disconnects clients. */
  stop(mode: 'immediate' | 'fast'): Promise<void>;
  /** The postmaster runs (not a zombie). */
  running(): Promise<boolean>;
  close(): Promise<void>;
}

/** Null (with the reason) when this machine has no PostgreSQL 15 server programs. */
export async function postgresMissing(): Promise<string | null> {
  try {
    await access(join(BIN, 'initdb'));
    await access(join(BIN, 'pg_ctl'));
    return null;
  } catch {
    return `no PostgreSQL 15 server programs in ${BIN} (apt-get install postgresql-15)`;
  }
}

/** `onUnexpectedExit` is called when the postmaster is gone while the soak has not stopped it (checked every 2 s). */
export function createSoakPostgres(dir: string, port: number, onUnexpectedExit: (detail: string) => void): SoakPostgres {
  const data = join(dir, 'data');
  let up = false;
  let reported = false;
  const watch = setInterval(() => {
    if (!up || reported) return;
    void running().then((alive) => {
      if (!alive && up && !reported) {
        reported = true;
        onUnexpectedExit('the PostgreSQL postmaster is gone and the soak did not stop it');
      }
    });
  }, 2000);
  watch.unref();
  const asRoot = process.getuid?.() === 0;
  const pg = async (program: string, args: string[], timeoutMs = 120_000): Promise<string> => {
    const argv = asRoot ? ['runuser', '-u', 'postgres', '--', join(BIN, program), ...args] : [join(BIN, program), ...args];
    const options = { cwd: dir, timeout: timeoutMs, killSignal: 'SIGKILL' as const, detached: true };
    return (await run(argv[0] as string, argv.slice(1), options)).stdout;
  };
  const settings = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;

  const postmasterPid = async (): Promise<number | null> => {
    const text = await readFile(join(data, 'postmaster.pid'), 'utf8').catch(() => null);
    const pid = Number(text?.split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  };

  const running = async (): Promise<boolean> => {
    const pid = await postmasterPid();
    if (pid === null) return false;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
    // The state follows the command name in parentheses; Z is a zombie.
    return stat !== null && !/\) Z /.test(stat);
  };

  return {
    url: `postgres://pier@127.0.0.1:${port}/pier`,
    async init() {
      await mkdir(dir, { recursive: true });
      if (asRoot) {
        const uid = Number((await run('id', ['-u', 'postgres'])).stdout.trim());
        const gid = Number((await run('id', ['-g', 'postgres'])).stdout.trim());
        await chown(dir, uid, gid);
      }
      await pg('initdb', ['-D', data, '-U', 'pier', '--auth=trust', '--no-sync', '-E', 'UTF8']);
      await this.start();
      await pg('createdb', ['-h', dir, '-p', String(port), '-U', 'pier', 'pier']);
    },
    async start() {
      await pg('pg_ctl', ['-D', data, '-o', settings, '-l', join(dir, 'log'), '-w', '-t', '120', 'start'], 180_000);
      up = true;
      reported = false;
    },
    async stop(mode) {
      up = false;
      await pg('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop'], 90_000);
    },
    running,
    async close() {
      up = false;
      clearInterval(watch);
      await pg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], 30_000).catch(() => '');
      const pid = await postmasterPid();
      if (pid !== null && (await running())) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone meanwhile.
        }
        await delay(200);
      }
    },
  };
}
