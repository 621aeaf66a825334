// The token the edge of `pier server` follows the feed and reports with: org-wide, scope `edge`,
// made on first start and kept in <data dir>/edge-token (mode 0600, like admin-token) while the
// database knows it; made again when it was revoked or the database is new. Never printed.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { and, eq, isNull } from 'drizzle-orm';
import type { Db } from '../db/database.js';
import { tokens } from '../db/schema/index.js';
import { newId } from './ids.js';
import { generateTokenSecret, hashTokenSecret } from './token-secret.js';

export interface EdgeTokenOptions {
  db: Db;
  dataDir: string;
  orgId: string;
}

/** The edge token's file, made (with its row) when there is no valid one. */
export async function bootstrapEdgeToken(options: EdgeTokenOptions): Promise<string> {
  const { db } = options;
  const file = join(options.dataDir, 'edge-token');
  const existing = await readFile(file, 'utf8').then((s) => s.trim(), () => null);
  if (existing) {
    const [row] = await db
      .select({ id: tokens.id })
      .from(tokens)
      .where(and(eq(tokens.hash, hashTokenSecret(existing)), eq(tokens.scope, 'edge'), isNull(tokens.appId), isNull(tokens.revokedAt)));
    if (row) return file;
  }
  const secret = generateTokenSecret();
  await db.insert(tokens).values({ id: newId('tok'), orgId: options.orgId, name: 'edge (local)', hash: hashTokenSecret(secret), scope: 'edge' });
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${secret}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return file;
}
