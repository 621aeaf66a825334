// A fresh database per test: a new database on the PostgreSQL server named by DATABASE_URL
// (dropped afterwards), or an in-memory PGlite when no URL is set. createTestDb() and test servers
// start from a copy of a migrated template (made once per set of migrations: the migrations cost
// seconds per database); createTestDbUrl() gives an empty one, for the tests of the migrations.
import type { TestContext } from 'node:test';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createPgliteTemplate, openDatabase, type Database } from '../../db/database.js';
import { migrationsHash } from './migrations-hash.js';

/** One migrated embedded database per test process, copied for each test (initdb once, not per test). */
let pgliteTemplate: Promise<Blob> | undefined;
/** The name of the migrated template database on the PostgreSQL server, once this process knows it. */
let postgresTemplate: Promise<string> | undefined;

/**
 * What still uses each test database, closed before it is dropped. A test's `after` hooks run in
 * the order they were added, so the drop (added when the database is made) would otherwise come
 * before the close of the server or pool that uses it: a server whose database is dropped under it
 * with `force` could hang in its close (a reconcile pass retrying its lock), holding the test file.
 */
const users = new Map<string, (() => Promise<void>)[]>();

/** Runs `close` (once) before the test database at `url` is dropped; returns it, to be used as the after hook too. */
export function closeBeforeDrop(url: string | undefined, close: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const once = () => (done ??= close());
  if (url) users.set(url, [...(users.get(url) ?? []), once]);
  return once;
}

export async function createTestDb(t: TestContext): Promise<Database> {
  const url = await createMigratedTestDbUrl(t);
  const template = url ? undefined : await (pgliteTemplate ??= createPgliteTemplate());
  const database = await openDatabase({ url, dataDir: 'memory://', template });
  t.after(closeBeforeDrop(url, () => database.close()));
  return database;
}

/**
 * The admin connection's options: one session, quiet, and no statement (a create, a drop, the
 * template's lock) waits more than 2 minutes, so a stuck server fails the test instead of holding it.
 */
const ADMIN = { max: 1, onnotice: () => {}, connection: { statement_timeout: 120_000 } } as const;

/** A URL of a new, empty database on the server, or undefined when tests run on PGlite. */
export async function createTestDbUrl(t: TestContext): Promise<string | undefined> {
  const base = process.env.DATABASE_URL;
  if (!base) return undefined;
  return newDatabase(t, base, undefined);
}

/** A URL of a new database holding Pier's migrated schema (Pier still migrates it: nothing to do), or undefined on PGlite. */
export async function createMigratedTestDbUrl(t: TestContext): Promise<string | undefined> {
  const base = process.env.DATABASE_URL;
  if (!base) return undefined;
  return newDatabase(t, base, await (postgresTemplate ??= migratedTemplate(base)));
}

async function newDatabase(t: TestContext, base: string, template: string | undefined): Promise<string> {
  const name = `pier_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(base, ADMIN);
  await admin.unsafe(`create database ${name}${template ? ` template ${template}` : ''}`);
  const url = withDatabase(base, name);
  t.after(async () => {
    // Whatever still uses the database closes first, newest first.
    for (const close of (users.get(url) ?? []).reverse()) await close().catch(() => undefined);
    users.delete(url);
    try {
      // Retried: a drop fails while a session of another role is on the database (the server's
      // own tools, another helper's), and a failed hook must not leave this client open.
      for (let attempt = 1; ; attempt++) {
        try {
          await admin.unsafe(`drop database if exists ${name} with (force)`);
          break;
        } catch (err) {
          if (attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 500 * attempt));
        }
      }
    } finally {
      await admin.end({ timeout: 5 });
    }
  });
  return url;
}

/**
 * The migrated template for this set of migrations, made by Pier's own openDatabase on an empty
 * database and renamed into place, under an advisory lock: test processes run side by side, and
 * the first makes it while the others wait. It stays on the server for later runs.
 */
async function migratedTemplate(base: string): Promise<string> {
  const name = `pier_test_template_${await migrationsHash()}`;
  // One connection: the advisory lock belongs to the session that took it.
  const admin = postgres(base, ADMIN);
  try {
    await admin`select pg_advisory_lock(hashtext(${name}))`;
    const [found] = await admin`select 1 from pg_database where datname = ${name}`;
    if (!found) {
      const work = `${name}_${process.pid}`;
      await admin.unsafe(`drop database if exists ${work} with (force)`);
      await admin.unsafe(`create database ${work}`);
      const database = await openDatabase({ url: withDatabase(base, work), dataDir: 'memory://' });
      await database.close();
      await admin.unsafe(`alter database ${work} rename to ${name}`);
    }
    await admin`select pg_advisory_unlock(hashtext(${name}))`;
    return name;
  } finally {
    await admin.end({ timeout: 5 });
  }
}

function withDatabase(base: string, name: string): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}
