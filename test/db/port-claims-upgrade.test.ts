// Upgrading a database made before port claims (migrations 0000 and 0001, as main had them): the
// hand-written backfill (0003) claims every endpoint's port, the oldest endpoint on a port first;
// an endpoint that raced another app's onto the same port (possible before the database refused
// it) is removed with an event saying why, and TLS passthrough endpoints with their own server
// names keep sharing their port. On PGlite (a data folder) and on PostgreSQL.
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { asc, eq } from 'drizzle-orm';
import postgres from 'postgres';
import { openDatabase } from '../../db/database.js';
import { endpoints, events, portClaims, portModes } from '../../db/schema/index.js';
import { createTestDbUrl } from '../support/test-db.js';

const MIGRATIONS = fileURLToPath(new URL('../../../db/migrations', import.meta.url));
const BEFORE = ['0000_init', '0001_app_leases'];

/** A migrations folder holding only what a database made before port claims had applied. */
async function oldMigrations(dir: string): Promise<string> {
  const folder = join(dir, 'migrations');
  await mkdir(join(folder, 'meta'), { recursive: true });
  const journal = JSON.parse(await readFile(join(MIGRATIONS, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] };
  journal.entries = journal.entries.filter((e) => BEFORE.includes(e.tag));
  assert.equal(journal.entries.length, BEFORE.length, 'the journal starts with the migrations main had');
  await writeFile(join(folder, 'meta/_journal.json'), JSON.stringify(journal));
  for (const tag of BEFORE) await copyFile(join(MIGRATIONS, `${tag}.sql`), join(folder, `${tag}.sql`));
  return folder;
}

/** What the old schema held: web's :9000 first, then other's :9000 (the race), and a shared TLS port. */
const ROWS = `
insert into orgs (id, name) values ('org_1', 'default');
insert into apps (id, org_id, name) values ('app_web', 'org_1', 'web'), ('app_other', 'org_1', 'other');
insert into endpoints (id, app_id, process, port, target_port, created_at) values
  ('ep_web9000', 'app_web', 'web', 9000, 8080, now() - interval '2 hours'),
  ('ep_other9000', 'app_other', 'web', 9000, 8080, now() - interval '1 hour'),
  ('ep_other9100', 'app_other', 'web', 9100, 8080, now() - interval '1 hour');
insert into endpoints (id, app_id, process, port, target_port, tls, sni, sni_default, created_at) values
  ('ep_web443', 'app_web', 'web', 443, 8443, 'passthrough', '["A.example.com"]', true, now() - interval '2 hours'),
  ('ep_other443', 'app_other', 'web', 443, 8443, 'passthrough', '["b.example.com"]', false, now() - interval '1 hour');
`;

test('upgrading a database made before port claims claims every port, oldest first, and removes the endpoint that raced for one', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pier-upgrade-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const old = await oldMigrations(dir);
  const url = await createTestDbUrl(t);
  const dataDir = join(dir, 'db');

  if (url) {
    const { drizzle } = await import('drizzle-orm/postgres-js');
    const { migrate } = await import('drizzle-orm/postgres-js/migrator');
    const client = postgres(url, { max: 1, onnotice: () => {} });
    try {
      await migrate(drizzle(client), { migrationsFolder: old });
      await client.unsafe(ROWS);
    } finally {
      await client.end({ timeout: 5 });
    }
  } else {
    const { PGlite } = await import('@electric-sql/pglite');
    const { drizzle } = await import('drizzle-orm/pglite');
    const { migrate } = await import('drizzle-orm/pglite/migrator');
    await mkdir(dataDir, { recursive: true });
    const client = new PGlite(dataDir);
    try {
      await migrate(drizzle(client), { migrationsFolder: old });
      await client.exec(ROWS);
    } finally {
      await client.close();
    }
  }

  // What `pier server` does at start: apply the migrations it ships.
  const database = await openDatabase({ url, dataDir });
  t.after(() => database.close());
  const { db } = database;

  // Sorted here: the server's collation may order '*' and names differently.
  const claims = (await db.select().from(portClaims)).sort((a, b) => a.port - b.port || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  assert.deepEqual(
    claims.map((c) => [c.address, c.port, c.name, c.mode, c.appId, c.endpointId]),
    [
      ['*', 443, '*', 'tls', 'app_web', 'ep_web443'],
      ['*', 443, 'a.example.com', 'tls', 'app_web', 'ep_web443'],
      ['*', 443, 'b.example.com', 'tls', 'app_other', 'ep_other443'],
      ['*', 9000, '', 'tcp', 'app_web', 'ep_web9000'],
      ['*', 9100, '', 'tcp', 'app_other', 'ep_other9100'],
    ],
  );
  assert.deepEqual((await db.select().from(portModes).orderBy(asc(portModes.port))).map((m) => [m.port, m.mode]), [
    [443, 'tls'],
    [9000, 'tcp'],
    [9100, 'tcp'],
  ]);
  assert.deepEqual((await db.select({ id: endpoints.id }).from(endpoints)).map((e) => e.id).sort(), ['ep_other443', 'ep_other9100', 'ep_web443', 'ep_web9000']);
  const [removed] = await db.select().from(events).where(eq(events.appId, 'app_other'));
  assert.equal(removed?.type, 'endpoint.changed');
  assert.equal(removed?.reason, 'port-in-use');
  assert.match(removed?.message ?? '', /endpoint :9000 removed at upgrade: another app held port 9000 first/);

  // The claims now hold: the port is web's, and the database refuses another app's claim.
  await assert.rejects(db.insert(portClaims).values({ address: '*', port: 9000, name: '', mode: 'tcp', appId: 'app_other', endpointId: 'ep_other9100' }));
});
