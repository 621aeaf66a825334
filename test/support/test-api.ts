// The Hono API wired as api/server.ts wires it, on a fresh test database, with no container
// engine (a throwing runtime) and no scheduler (enqueue only records the app id); plus helpers
// that make orgs, apps and tokens directly in the database.
import { randomBytes } from 'node:crypto';
import { createKeyVault } from '../../api/certificates/key-vault.js';
import type { TestContext } from 'node:test';
import type { Hono } from 'hono';
import { pino } from 'pino';
import type { Db } from '../../db/database.js';
import { apps, orgs, tokens, type TokenScope } from '../../db/schema/index.js';
import { createApi } from '../../api/app.js';
import type { ApiEnv } from '../../api/auth.js';
import { createAppDeleter } from '../../api/app-deleter.js';
import { createDeployService } from '../../api/deploy-service.js';
import { createEdgeFeed, type EdgeFeed } from '../../api/edge-feed.js';
import { createEdgeReports } from '../../api/edge-reports.js';
import { createEventLog, type EventLog } from '../../api/event-log.js';
import { createTransactions } from '../../api/transactions.js';
import { newId } from '../../api/ids.js';
import { generateTokenSecret, hashTokenSecret } from '../../api/token-secret.js';
import { createTestDb } from './test-db.js';
import { throwingRuntime } from './throwing-runtime.js';

export interface TestApi {
  app: Hono<ApiEnv>;
  db: Db;
  events: EventLog;
  /** App ids the deploy service asked the scheduler to reconcile. */
  enqueued: string[];
  /** Runtime methods that were called (each one threw). */
  runtimeCalls: string[];
  setReady(ready: boolean): void;
  edgeFeed: EdgeFeed;
  /** A request with a bearer token; a JSON body is sent as application/json. */
  request(path: string, options?: { token?: string; method?: string; body?: unknown; rawBody?: string }): Promise<Response>;
}

export async function createTestApi(t: TestContext): Promise<TestApi> {
  const { db } = await createTestDb(t);
  const log = pino({ level: 'silent' });
  const runtime = throwingRuntime();
  const enqueued: string[] = [];
  const sharedAddresses = ['127.0.0.1', '::1'];
  const events = createEventLog(db);
  // A vault with a key of this test only (the server's lives in its data folder).
  const keyVault = createKeyVault(randomBytes(32));
  const edgeFeed = createEdgeFeed({ db, log, sharedAddresses, keyVault });
  const transactions = createTransactions({ db, events });
  const deploys = createDeployService({ db, runtime, transactions, enqueue: (id) => void enqueued.push(id) });
  const deleter = createAppDeleter({ runtime, transactions, onDeleted: (id) => void enqueued.push(id) });
  const edgeReports = createEdgeReports({ db, transactions, log, enqueue: (id) => void enqueued.push(id) });
  let ready = true;
  const app = createApi({ db, events, runtime, deploys, deleter, edgeFeed, edgeReports, log, sharedAddresses, ready: () => ready, keyVault });
  return {
    app,
    db,
    edgeFeed,
    events,
    enqueued,
    runtimeCalls: runtime.calls,
    setReady: (r) => void (ready = r),
    async request(path, options = {}) {
      const headers: Record<string, string> = {};
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      let body: string | undefined = options.rawBody;
      if (options.body !== undefined) body = JSON.stringify(options.body);
      if (body !== undefined) headers['content-type'] = 'application/json';
      return app.request(path, { method: options.method ?? (body === undefined ? 'GET' : 'POST'), headers, body });
    },
  };
}

export async function createOrg(db: Db, name: string): Promise<string> {
  const id = newId('org');
  await db.insert(orgs).values({ id, name });
  return id;
}

export async function createApp(db: Db, orgId: string, name: string): Promise<string> {
  const id = newId('app');
  await db.insert(apps).values({ id, orgId, name });
  return id;
}

export interface TokenOptions {
  scope: TokenScope;
  appId?: string | null;
  expiresAt?: Date | null;
  revokedAt?: Date | null;
}

/** Stores a token's hash and returns its secret, as an admin creating a token would. */
export async function createToken(db: Db, orgId: string, options: TokenOptions): Promise<string> {
  const secret = generateTokenSecret();
  await db.insert(tokens).values({
    id: newId('tok'),
    orgId,
    name: `test ${options.scope}`,
    hash: hashTokenSecret(secret),
    scope: options.scope,
    appId: options.appId ?? null,
    expiresAt: options.expiresAt ?? null,
    revokedAt: options.revokedAt ?? null,
  });
  return secret;
}
