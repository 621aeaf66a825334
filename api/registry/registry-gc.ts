// Garbage collection of Pier's registry. Pier keeps every release record (rollback to any), but
// not every image: per live app it keeps the images of its newest KEEP releases (distinct
// images, by version), of its current release and of any release with an instance that runs or
// should; images of deleted apps and of releases past that go. A build pushed but never deployed
// goes once it is older than the grace time (so `pier build` then `pier deploy` within it is
// safe). Every image pushed within the grace time stays, whatever else says it may go.
//
// Manifests are deleted through the registry API. For Pier's own registry the blobs no manifest
// references are then reclaimed by `docker-registry garbage-collect`, with the registry stopped
// meanwhile. An external registry has no push times Pier can read, so there Pier deletes only the
// manifests its releases name (past retention, or of deleted apps); its blobs and builds never
// deployed are the operator's (docs/operations.md).
import { readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { eq, inArray, like, or } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../../db/database.js';
import { apps, instances, orgs, releases } from '../../db/schema/index.js';
import type { LocalRegistry } from './local-registry.js';
import { createRegistryClient } from './registry-client.js';
import type { RegistryGate } from './registry-gate.js';
import type { Registry } from './registry.js';

export interface RegistryGcOptions {
  db: Db;
  registry: Registry | LocalRegistry;
  gate: RegistryGate;
  /** Built images kept per live app, newest first (besides the current and running ones). */
  keep: number;
  /** A pushed image younger than this is never deleted. */
  graceMs: number;
  log: Logger;
}

export type GcReason = 'past-retention' | 'app-deleted' | 'never-deployed';

export interface GcItem {
  /** `host/org/app@sha256:…` */
  image: string;
  repository: string;
  digest: string;
  reason: GcReason;
  /** Releases that pinned it (`app vN`), empty for a build never deployed. */
  releases: string[];
  /** Bytes its manifest names (layers shared with kept images included). */
  bytes: number;
}

export interface GcResult {
  dryRun: boolean;
  registry: 'local' | 'external';
  removed: GcItem[];
  /** Manifests looked at and kept. */
  kept: number;
  /** Storage freed, measured on disk (local registry, real run); null otherwise. */
  bytesFreed: number | null;
  /** Whether unreferenced blobs were reclaimed (local registry only). */
  blobsCollected: boolean;
}

interface Manifest {
  repository: string;
  digest: string;
  /** When it was last pushed (ms), if known. */
  pushedAt: number | undefined;
}

interface Pinned {
  releases: string[];
  live: boolean;
}

export function createRegistryGc(options: RegistryGcOptions) {
  const { db, registry, gate, log } = options;
  const client = createRegistryClient(registry);
  const local = registry.kind === 'local' ? (registry as LocalRegistry) : null;

  /**
   * How a pinned image and a stored manifest are matched. Pier's own registry is the same storage
   * whatever address it listens on (`--registry-listen` changed, or a kept port taken and another
   * picked), so its releases match by `REPO@DIGEST` under any host; an external registry's by the
   * whole reference. Matching more only keeps more.
   */
  const keyOf = (image: string): string => (local ? image.slice(image.indexOf('/') + 1) : image);

  /** Every release that pins an image of this registry (of any address, for Pier's own), with its app. */
  async function pinnedReleases() {
    const prefix = local ? '' : `${registry.host}/`;
    return db
      .select({
        id: releases.id,
        appId: releases.appId,
        version: releases.version,
        digest: releases.imageDigest,
        app: apps.name,
        deletedAt: apps.deletedAt,
        currentReleaseId: apps.currentReleaseId,
      })
      .from(releases)
      .innerJoin(apps, eq(apps.id, releases.appId))
      .where(like(releases.imageDigest, `${prefix.replace(/[%_\\]/g, '\\$&')}%/%@sha256:%`));
  }

  /** What must stay: the images of live apps' current, running and newest KEEP releases. */
  async function keepSet(rows: Awaited<ReturnType<typeof pinnedReleases>>): Promise<{ keep: Set<string>; pinned: Map<string, Pinned> }> {
    const running = new Set(
      (
        await db
          .select({ releaseId: instances.releaseId })
          .from(instances)
          .where(or(eq(instances.desiredState, 'running'), inArray(instances.observedState, ['starting', 'running'])))
      ).map((r) => r.releaseId),
    );
    const keep = new Set<string>();
    const pinned = new Map<string, Pinned>();
    const byApp = new Map<string, typeof rows>();
    for (const r of rows) {
      const key = keyOf(r.digest);
      const p = pinned.get(key) ?? { releases: [], live: false };
      p.releases.push(`${r.app} v${r.version}`);
      p.live ||= r.deletedAt === null;
      pinned.set(key, p);
      if (r.id === r.currentReleaseId || running.has(r.id)) keep.add(key);
      if (r.deletedAt === null) byApp.set(r.appId, [...(byApp.get(r.appId) ?? []), r]);
    }
    for (const list of byApp.values()) {
      const newest = new Set<string>();
      for (const r of list.sort((a, b) => b.version - a.version)) {
        if (newest.size >= options.keep) break;
        newest.add(keyOf(r.digest));
      }
      for (const d of newest) keep.add(d);
    }
    return { keep, pinned };
  }

  /** The manifests in the registry under Pier's orgs' repositories. */
  async function manifests(): Promise<Manifest[]> {
    const orgIds = new Set((await db.select({ id: orgs.id }).from(orgs)).map((o) => o.id.toLowerCase()));
    const ours = (repo: string): boolean => orgIds.has(repo.split('/')[0] ?? '');
    if (local) return (await localManifests(local.storageDir)).filter((m) => ours(m.repository));
    const out: Manifest[] = [];
    for (const repo of (await client.repositories()).filter(ours)) {
      const seen = new Set<string>();
      for (const tag of await client.tags(repo)) {
        const digest = await client.manifestDigest(repo, tag);
        if (digest && !seen.has(digest)) {
          seen.add(digest);
          out.push({ repository: repo, digest, pushedAt: undefined });
        }
      }
    }
    return out;
  }

  async function plan(): Promise<{ removed: Omit<GcItem, 'bytes'>[]; kept: number }> {
    const rows = await pinnedReleases();
    const { keep, pinned } = await keepSet(rows);
    const now = Date.now();
    const removed: Omit<GcItem, 'bytes'>[] = [];
    let kept = 0;
    for (const m of await manifests()) {
      const image = `${registry.host}/${m.repository}@${m.digest}`;
      const pushedAt = Math.max(m.pushedAt ?? 0, gate.lastPush(image) ?? 0);
      const young = now - pushedAt < options.graceMs;
      const p = pinned.get(keyOf(image));
      let reason: GcReason | null = null;
      if (keep.has(keyOf(image)) || young) reason = null;
      else if (p) reason = p.live ? 'past-retention' : 'app-deleted';
      // Without a push time (external registry) a build never deployed may be about to be.
      else if (m.pushedAt !== undefined) reason = 'never-deployed';
      if (reason === null) kept++;
      else removed.push({ image, repository: m.repository, digest: m.digest, reason, releases: p?.releases ?? [] });
    }
    return { removed, kept };
  }

  return {
    /** One collection; with dryRun, only what it would remove. Waits for rollbacks in progress. */
    async run(opts: { dryRun?: boolean } = {}): Promise<GcResult> {
      const dryRun = opts.dryRun === true;
      return gate.exclusive(async () => {
        const { removed, kept } = await plan();
        const items: GcItem[] = [];
        for (const r of removed) items.push({ ...r, bytes: await client.manifestBytes(r.repository, r.digest) });
        if (dryRun) return { dryRun, registry: registry.kind, removed: items, kept, bytesFreed: null, blobsCollected: false };
        for (const r of items) {
          await client.deleteManifest(r.repository, r.digest);
          log.info({ image: r.image, reason: r.reason, releases: r.releases }, 'registry image deleted');
        }
        if (!local) return { dryRun, registry: registry.kind, removed: items, kept, bytesFreed: null, blobsCollected: false };
        // Nothing deleted leaves nothing to reclaim: the registry keeps serving.
        if (items.length === 0) return { dryRun, registry: 'local', removed: items, kept, bytesFreed: 0, blobsCollected: false };
        const before = await folderBytes(local.storageDir);
        await local.collectBlobs();
        const after = await folderBytes(local.storageDir);
        return { dryRun, registry: 'local', removed: items, kept, bytesFreed: Math.max(0, before - after), blobsCollected: true };
      });
    },
  };
}

export type RegistryGc = ReturnType<typeof createRegistryGc>;

/**
 * The manifests distribution keeps on disk: repositories/<repo>/_manifests/revisions/sha256/<hex>/link,
 * the link written at every push of that manifest (its time is the last push).
 */
async function localManifests(storageDir: string): Promise<Manifest[]> {
  const root = join(storageDir, 'docker', 'registry', 'v2', 'repositories');
  const entries = await readdir(root, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  const out: Manifest[] = [];
  for (const entry of entries) {
    const parts = entry.split(sep);
    const at = parts.indexOf('_manifests');
    if (at < 1 || parts[at + 1] !== 'revisions' || parts[at + 2] !== 'sha256' || parts.length !== at + 5 || parts[at + 4] !== 'link') continue;
    const file = join(root, entry);
    const info = await stat(file).catch(() => null);
    if (!info) continue;
    out.push({ repository: relative(root, join(root, ...parts.slice(0, at))).split(sep).join('/'), digest: `sha256:${parts[at + 3]}`, pushedAt: info.mtimeMs });
  }
  return out;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile()) continue;
    const info = await stat(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).catch(() => null);
    total += info?.size ?? 0;
  }
  return total;
}
