// A fresh database per test: a new database on the PostgreSQL server named by DATABASE_URL
// (dropped afterwards), or an in-memory PGlite when no URL is set.
import type { TestContext } from 'node:test';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createPgliteTemplate, openDatabase, type Database } from '../../db/database.js';

/** One migrated embedded database per test process, copied for each test (initdb once, not per test). */
let pgliteTemplate: Promise<Blob> | undefined;

export async function createTestDb(t: TestContext): Promise<Database> {
  const url = await createTestDbUrl(t);
  const template = url ? undefined : await (pgliteTemplate ??= createPgliteTemplate());
  const database = await openDatabase({ url, dataDir: 'memory://', template });
  t.after(() => database.close());
  return database;
}

/** A URL of a new, empty database on the server, or undefined when tests run on PGlite. */
export async function createTestDbUrl(t: TestContext): Promise<string | undefined> {
  const base = process.env.DATABASE_URL;
  if (!base) return undefined;
  const name = `pier_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  t.after(async () => {
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
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}
