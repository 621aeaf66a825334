// Parity between two environments, per app: image digest, the manifest as declared (before its
// environment's override), the effective env values and counts, endpoint ports, volumes and
// secrets. Each difference is "declared" when an `[env.NAME]` override (or a preview's port range)
// explains it and "drift" otherwise: a different image, a manifest deployed from another commit,
// a `pier scale` in one environment, a secret that exists in only one. Pure: the route loads both sides.
import type { DeclaredConfig, Release } from '../db/schema/index.js';
import { countsByProcess, desiredCounts } from './desired-counts.js';
import type { EnvOverride } from './environment-overrides.js';
import type { Manifest } from './manifest.js';

export interface DiffSide {
  environment: string;
  app: { name: string; scale: Record<string, number>; scaledAt: Record<string, string> } | null;
  release: Pick<Release, 'version' | 'imageId' | 'imageDigest' | 'manifest' | 'declared' | 'secrets'> | null;
  /** KEY → digest of the current version. */
  secretDigests: Record<string, string>;
}

export interface Difference {
  app: string;
  /** What differs: `digest`, `manifest.<path>`, `env.<KEY>`, `count.<process>`, `endpoint.<port>`, `volume.<name>`, `secret.<KEY>`, `app`. */
  field: string;
  a: unknown;
  b: unknown;
  kind: 'declared' | 'drift';
  why: string;
}

export function diffApp(name: string, a: DiffSide, b: DiffSide): Difference[] {
  const out: Difference[] = [];
  const add = (field: string, av: unknown, bv: unknown, kind: Difference['kind'], why: string) => out.push({ app: name, field, a: av ?? null, b: bv ?? null, kind, why });
  if (!a.release || !b.release || !a.app || !b.app) {
    add('app', a.release ? `v${a.release.version}` : null, b.release ? `v${b.release.version}` : null, 'drift', `${name} is deployed in ${a.release ? a.environment : b.environment} only`);
    return out;
  }
  if (a.release.imageId !== b.release.imageId) add('digest', a.release.imageDigest, b.release.imageDigest, 'drift', 'the environments run different images');

  const da = declaredOf(a), db = declaredOf(b);
  const fa = flatten(da.base), fb = flatten(db.base);
  for (const path of union(Object.keys(fa), Object.keys(fb))) {
    if (path === 'app' || path === 'image') continue;
    if (JSON.stringify(fa[path]) !== JSON.stringify(fb[path])) add(`manifest.${path}`, fa[path], fb[path], 'drift', 'the manifests differ outside their [env.*] overrides');
  }
  const oa = da.applied ? (da.overrides[da.applied] as EnvOverride | undefined) : undefined;
  const ob = db.applied ? (db.overrides[db.applied] as EnvOverride | undefined) : undefined;
  const ma = a.release.manifest as Manifest, mb = b.release.manifest as Manifest;

  // Env values as they run (top level and per process).
  const ea = envOf(ma), eb = envOf(mb);
  for (const key of union(Object.keys(ea), Object.keys(eb))) {
    if (ea[key] === eb[key]) continue;
    const [scope, k] = key.split(':') as [string, string];
    const declared = scope === '' ? oa?.env?.[k] !== undefined || ob?.env?.[k] !== undefined : oa?.processes?.[scope]?.env?.[k] !== undefined || ob?.processes?.[scope]?.env?.[k] !== undefined;
    // Values are not shown: a manifest's env may hold what should have been a secret.
    add(`env.${scope ? `${scope}.` : ''}${k}`, ea[key] === undefined ? null : 'set', eb[key] === undefined ? null : 'set', declared ? 'declared' : 'drift', declared ? 'set by an [env.*] override' : 'the value differs and no override sets it');
  }

  const ca = countsByProcess(desiredCounts(a.app, ma, a.release.version));
  const cb = countsByProcess(desiredCounts(b.app, mb, b.release.version));
  for (const p of union(Object.keys(ma.processes), Object.keys(mb.processes))) {
    const na = ca[p] ?? 0, nb = cb[p] ?? 0;
    if (na === nb) continue;
    const byScale = a.app.scale[p] !== undefined || b.app.scale[p] !== undefined;
    const declared = !byScale && (oa?.processes?.[p]?.count !== undefined || ob?.processes?.[p]?.count !== undefined);
    add(`count.${p}`, na, nb, declared ? 'declared' : 'drift', declared ? 'set by an [env.*] override' : byScale ? '`pier scale` changed it in one environment' : 'the counts differ');
  }

  // Endpoints by the port the base manifest gives them.
  const pa = portsOf(ma, da), pb = portsOf(mb, db);
  for (const port of union(Object.keys(pa), Object.keys(pb))) {
    if (pa[port] === pb[port]) continue;
    const declared = pa[port] !== undefined && pb[port] !== undefined;
    add(`endpoint.${port}`, pa[port], pb[port], declared ? 'declared' : 'drift', declared ? 'an [env.*] override or the preview port range moves it' : 'the endpoint exists in one environment only');
  }

  const va = new Set(ma.volumes.map((v) => v.name)), vb = new Set(mb.volumes.map((v) => v.name));
  for (const v of union([...va], [...vb])) if (va.has(v) !== vb.has(v)) add(`volume.${v}`, va.has(v), vb.has(v), 'drift', 'the volume exists in one environment only');

  for (const key of union(Object.keys(a.secretDigests), Object.keys(b.secretDigests))) {
    const sa = a.secretDigests[key], sb = b.secretDigests[key];
    if (sa === sb) continue;
    if (sa === undefined || sb === undefined) add(`secret.${key}`, sa ?? null, sb ?? null, 'drift', 'the secret is set in one environment only');
    else add(`secret.${key}`, sa, sb, 'declared', 'secret values are per environment');
  }
  return out;
}

function declaredOf(side: DiffSide): DeclaredConfig {
  const r = side.release!;
  return r.declared ?? { environment: side.environment, base: r.manifest, overrides: {}, applied: null, remappedPorts: {} };
}

function envOf(m: Manifest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.env)) out[`:${k}`] = v;
  for (const [p, spec] of Object.entries(m.processes)) for (const [k, v] of Object.entries(spec.env)) out[`${p}:${k}`] = v;
  return out;
}

function portsOf(m: Manifest, d: DeclaredConfig): Record<string, number> {
  const base = (d.base as Manifest).endpoints ?? [];
  const out: Record<string, number> = {};
  base.forEach((e, i) => {
    const now = m.endpoints[i];
    // A preview with an address of its own keeps the port there and serves the range port on the
    // shared one (api/environment-deploy.ts): the range port is what differs.
    if (now) out[String(e.port)] = d.remappedPorts?.[String(e.port)] ?? now.port;
  });
  return out;
}

function flatten(v: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
    if (Object.keys(v).length === 0 && prefix) out[prefix] = {};
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => flatten(x, `${prefix}[${i}]`, out));
    if (v.length === 0 && prefix) out[prefix] = [];
  } else if (prefix) out[prefix] = v;
  return out;
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])].sort();
}
