// Opens Pier's database: PostgreSQL through postgres.js when a URL is given, otherwise an
// embedded PGlite database in a folder (or in memory), and applies the committed migrations.
// On PostgreSQL, advisory locks live on a session of their own (db/advisory-locks.ts).
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import * as schema from './schema/index.js';
import { createLocalLocks, createPostgresLocks, type AdvisoryLocks } from './advisory-locks.js';
import { initPgliteDataDir } from './pglite-first-start.js';

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export interface DatabaseOptions {
  /** A `postgres://` URL; when absent the embedded database is used. */
  url?: string | undefined;
  /** Folder of the embedded database, or `memory://` for one that lives in memory. */
  dataDir: string;
  /** Told when the lock session is lost with locks held (PostgreSQL only). */
  onLocksLost?: (why: string, locks: number) => void;
  /** The query pool's application_name on PostgreSQL, so /metrics can find its sessions. */
  applicationName?: string;
  /**
   * Embedded only: start from this copy of a database (`createPgliteTemplate`) instead of an
   * empty one. Tests open hundreds of fresh databases; each initdb costs seconds, a copy does not.
   */
  template?: Blob | undefined;
}

export interface Database {
  db: Db;
  kind: 'postgres' | 'pglite';
  /** Named cross-process locks; on PostgreSQL they never take a connection from the pool. */
  locks: AdvisoryLocks;
  /** The query pool: its size, and the application_name of its sessions (null on PGlite). */
  pool: { max: number; applicationName: string | null };
  close(): Promise<void>;
}

/** The query pool's size on PostgreSQL: postgres.js's default, kept on purpose. */
export const POOL_SIZE = 10;
/** The lock session's application_name, as pg_stat_activity shows it. */
export const LOCK_SESSION_NAME = 'pier-locks';

const CLIENT_OPTIONS = {
  onnotice: () => {},
  // Reconnect at most a second after a failed attempt (0.1, 0.2, 0.4 … 1 s): postgres.js's own
  // backoff grows to 20 s while the server is down, so the API stayed unavailable long after
  // the server came back.
  backoff: (retries: number): number => Math.min(0.05 * 2 ** retries, 1),
  // postgres.js reads the array types on every new connection with a query nobody awaits: a
  // connection lost at that moment (a restart) rejected it unhandled. The schema has no array
  // columns (lists are jsonb), so the types are not needed.
  fetch_types: false,
};

const migrationsFolder = fileURLToPath(new URL('../../db/migrations', import.meta.url));

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) return openPostgres(options.url, options);
  return openPglite(options.dataDir, options.template);
}

/** A migrated, empty embedded database as a dump, to open copies of with `template`. */
export async function createPgliteTemplate(): Promise<Blob> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  const client = new PGlite('memory://', { startParams: pgliteStartParams(PGlite.defaultStartParams) });
  try {
    await client.waitReady;
    await migrate(drizzle(client, { schema }), { migrationsFolder });
    return await client.dumpDataDir('none');
  } finally {
    await client.close();
  }
}

// PostgreSQL's default 128 MB of shared buffers is resident in the WebAssembly heap; Pier's data
// is a few megabytes (docs/operations.md has the figures).
function pgliteStartParams(defaults: string[]): string[] {
  return [...defaults, '-c', 'shared_buffers=16MB'];
}

async function openPostgres(url: string, options: DatabaseOptions): Promise<Database> {
  const { default: postgres } = await import('postgres');
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const { migrate } = await import('drizzle-orm/postgres-js/migrator');
  // A connection that does not come up in 5 s is given up (default 30 s): the request waiting
  // for it fails (503) instead of hanging, and the next one connects afresh. Under a CPU-saturated
  // machine, one connect in 20 PostgreSQL restarts hung until its timeout right as the server came
  // back (CONNECT_TIMEOUT; test/e2e/postgres-restart.test.ts): with 10 s that one request, and the
  // API's recovery, took 10.8 s. 5 s is what the lock session allows too, and ample for a
  // connect and SCRAM handshake to a database across a network.
  const client = postgres(url, {
    ...CLIENT_OPTIONS,
    max: POOL_SIZE,
    connect_timeout: 5,
    ...(options.applicationName ? { connection: { application_name: options.applicationName } } : {}),
  });
  const db = drizzle(client, { schema });
  try {
    await migrate(db, { migrationsFolder });
  } catch (err) {
    await client.end({ timeout: 1 });
    throw err;
  }
  const locks = createPostgresLocks({
    // One connection that lives as long as it can: recycling it would drop every lock.
    connect: (onClose) =>
      postgres(url, {
        max: 1,
        max_lifetime: 0,
        idle_timeout: 0,
        ...CLIENT_OPTIONS,
        connect_timeout: 5,
        keep_alive: 10,
        onclose: onClose,
        // Server-side keepalives: after a network partition the server drops this session (and
        // so its locks) within about 25 s instead of the default two hours.
        connection: { application_name: LOCK_SESSION_NAME, tcp_keepalives_idle: 10, tcp_keepalives_interval: 5, tcp_keepalives_count: 3 },
      }),
    onLost: options.onLocksLost,
  });
  return {
    db: db as unknown as Db,
    kind: 'postgres',
    locks,
    pool: { max: POOL_SIZE, applicationName: options.applicationName ?? null },
    async close() {
      await locks.close().catch(() => undefined);
      await client.end({ timeout: 5 });
    },
  };
}

async function openPglite(dataDir: string, template: Blob | undefined): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  if (!dataDir.startsWith('memory://')) {
    await mkdir(dataDir, { recursive: true });
    await initPgliteDataDir(dataDir);
  }
  const client = new PGlite(dataDir, { startParams: pgliteStartParams(PGlite.defaultStartParams), ...(template ? { loadDataDir: template } : {}) });
  await client.waitReady;
  const db = drizzle(client, { schema });
  await migrate(db, { migrationsFolder });
  const locks = createLocalLocks();
  return {
    db: db as unknown as Db,
    kind: 'pglite',
    locks,
    pool: { max: 1, applicationName: null },
    async close() {
      await locks.close();
      await client.close();
    },
  };
}
