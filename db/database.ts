// Opens Pier's database: PostgreSQL through postgres.js when a URL is given, otherwise an
// embedded PGlite database in a folder (or in memory), and applies the committed migrations.
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { createAdvisoryLocks } from './advisory-locks.js';
import { initPgliteDataDir } from './pglite-first-start.js';
import * as schema from './schema/index.js';

export type Schema = typeof schema;
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export interface DatabaseOptions {
  /** A `postgres://` URL; when absent the embedded database is used. */
  url?: string | undefined;
  /** Folder of the embedded database, or `memory://` for one that lives in memory. */
  dataDir: string;
}

export interface Database {
  db: Db;
  kind: 'postgres' | 'pglite';
  /**
   * Takes a session-level advisory lock named `key` without waiting: resolves with a release
   * function, or null when another session (another server process) holds it.
   */
  tryLock(key: string): Promise<(() => Promise<void>) | null>;
  close(): Promise<void>;
}

const CLIENT_OPTIONS = {
  max: 10,
  onnotice: () => {},
  // Reconnect at most a second after a failed attempt (0.1, 0.2, 0.4 … 1 s): postgres.js's own
  // backoff grows to 20 s while the server is down, so the API stayed unavailable long after
  // the server came back.
  backoff: (retries: number): number => Math.min(0.05 * 2 ** retries, 1),
  // postgres.js reads the array types on every new connection with a query nobody awaits: a
  // connection lost at that moment (a restart) rejected it unhandled. The schema has no array
  // columns (lists are jsonb), so the types are not needed.
  fetch_types: false,
  // A connection that does not come up in 10 s is given up (default 30 s): the request waiting
  // for it fails while the server is unreachable instead of hanging.
  connect_timeout: 10,
};

const migrationsFolder = fileURLToPath(new URL('../../db/migrations', import.meta.url));

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) return openPostgres(options.url);
  return openPglite(options.dataDir);
}

async function openPostgres(url: string): Promise<Database> {
  const { default: postgres } = await import('postgres');
  const { drizzle } = await import('drizzle-orm/postgres-js');
  const { migrate } = await import('drizzle-orm/postgres-js/migrator');
  const client = postgres(url, CLIENT_OPTIONS);
  const db = drizzle(client, { schema });
  await migrate(db, { migrationsFolder });
  const locks = createAdvisoryLocks({ connect: () => postgres(url, { ...CLIENT_OPTIONS, max: 1 }) });
  const tryLock = locks.tryLock;
  const close = async () => {
    await Promise.all([client.end({ timeout: 5 }), locks.close()]);
  };
  return { db: db as unknown as Db, kind: 'postgres', tryLock, close };
}

async function openPglite(dataDir: string): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  if (!dataDir.startsWith('memory://')) {
    await mkdir(dataDir, { recursive: true });
    await initPgliteDataDir(dataDir);
  }
  // PostgreSQL's default 128 MB of shared buffers is resident in the WebAssembly heap; Pier's
  // data is a few megabytes (docs/operations.md has the figures).
  const client = new PGlite(dataDir, { startParams: [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'] });
  await client.waitReady;
  const db = drizzle(client, { schema });
  await migrate(db, { migrationsFolder });
  // An embedded database belongs to one process: an in-process lock is the whole story.
  const held = new Set<string>();
  const tryLock = async (key: string) => {
    if (held.has(key)) return null;
    held.add(key);
    return async () => void held.delete(key);
  };
  return { db: db as unknown as Db, kind: 'pglite', tryLock, close: () => client.close() };
}
