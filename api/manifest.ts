// pier.toml: its schema, and parsing + validation of a whole manifest at once. The CLI sends
// the TOML text; the server validates it here, so both report the same problems, each at its
// `file:line:column`. Pure (no I/O): `pier validate` imports it too.
import ipaddr from 'ipaddr.js';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { closestKey } from './closest-key.js';
import { controlCharacterProblem, type TextKind } from './control-characters.js';
import { splitOverrides, type EnvOverride } from './environment-overrides.js';
import { imageReferenceProblem } from './image-reference.js';
import { indexTomlPositions, type TomlPositionIndex } from './manifest-positions.js';
import { PierError } from './pier-error.js';
import { privateSchema } from './private/private-spec.js';

const name = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,39}$/, 'must start with a letter and hold only a-z, 0-9 and "-" (at most 40 characters)');

/** A string that reaches Docker and the database: see api/control-characters.ts for what is refused. */
function text(kind: TextKind = 'text', base = z.string()) {
  return base.superRefine((value, ctx) => {
    const problem = controlCharacterProblem(value, kind);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}

const env = z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid variable name'), text());

const port = z.number().int().min(1).max(65535);

/** "500ms", "5s", "2m", "1h" → milliseconds. */
const duration = z
  .string()
  .regex(/^\d+(ms|s|m|h)$/, 'must be a duration like "500ms", "5s", "2m" or "1h"')
  .transform((v) => parseDuration(v));

/** Like a duration, with days too: "30m", "24h", "7d" → milliseconds. */
const longDuration = z
  .string()
  .regex(/^\d+(m|h|d)$/, 'must be a duration like "30m", "24h" or "7d"')
  .transform((v) => parseDuration(v));

const checkSchema = z
  .object({
    type: z.enum(['tcp', 'http', 'exec']),
    port: port.optional(),
    path: text('line', z.string().startsWith('/', 'must start with "/"')).default('/'),
    /** Expected HTTP status; any 2xx or 3xx when unset. */
    status: z.number().int().min(100).max(599).optional(),
    command: z.array(text()).min(1).optional(),
    interval: duration.default(5_000),
    timeout: duration.default(2_000),
    grace: duration.default(0),
    healthy_threshold: z.number().int().min(1).max(100).default(1),
    unhealthy_threshold: z.number().int().min(1).max(100).default(3),
    /** Consecutive failures after which the instance is restarted. */
    restart_threshold: z.number().int().min(1).max(1000).default(6),
  })
  .strict()
  .superRefine((c, ctx) => {
    if ((c.type === 'tcp' || c.type === 'http') && c.port === undefined) {
      ctx.addIssue({ code: 'custom', path: ['port'], message: `a ${c.type} check needs the port to probe inside the container` });
    }
    if (c.type === 'exec' && !c.command) ctx.addIssue({ code: 'custom', path: ['command'], message: 'an exec check needs a command, e.g. ["pg_isready"]' });
    if (c.restart_threshold < c.unhealthy_threshold) {
      ctx.addIssue({ code: 'custom', path: ['restart_threshold'], message: 'must be at least unhealthy_threshold' });
    }
  });

const placementSchema = z
  .object({
    /** "node": the group's instances run on distinct nodes (at most one per node). */
    spread: z.enum(['node']).optional(),
    /** Node labels an instance's node must carry, e.g. { disk = "ssd" } (`docker node update --label-add`). */
    labels: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'must be a node label name: letters, digits, ".", "_" and "-"'), text('line')).default({}),
  })
  .strict();

const processSchema = z
  .object({
    cmd: z.array(text()).min(1, 'must hold at least the program to run').optional(),
    /** Instances to run. Left out: what `pier scale` set, else 1 (api/desired-counts.ts). */
    count: z.number().int().min(0).max(100).optional(),
    env: env.default({}),
    check: checkSchema.optional(),
    /** Where instances may run when Pier runs on a swarm (`pier server --runtime swarm`). */
    placement: placementSchema.optional(),
  })
  .strict();

const deploySchema = z
  .object({
    strategy: z.enum(['rolling', 'immediate', 'bluegreen']).default('rolling'),
    /** Extra instances a rolling deploy may start beyond the count. */
    max_surge: z.number().int().min(0).max(100).default(1),
    /** Instances a rolling deploy may take out of service at once. */
    max_unavailable: z.number().int().min(0).max(100).default(0),
    /** The rollout fails when the new instances are not all ready by then. */
    timeout: duration.default(120_000),
    /** How long a replaced instance stays out of the route table before it is stopped. */
    drain: duration.default(5_000),
  })
  .strict()
  .refine((d) => d.strategy !== 'rolling' || d.max_surge + d.max_unavailable > 0, {
    message: 'a rolling deploy needs max_surge or max_unavailable above 0',
    path: ['max_surge'],
  });

const cidr = z.string().refine(isCidrOrAddress, 'must be an IP address or a CIDR such as "10.0.0.0/8" or "2001:db8::/32"');
const serverName = z
  .string()
  .toLowerCase()
  .regex(/^(\*\.)?([a-z0-9-]{1,63}\.)*[a-z0-9-]{1,63}$/, 'must be a host name, or "*." and a domain for one label');

/** Which address of a family an endpoint is served on (api/endpoint-bindings.ts). */
export const ADDRESS_CHOICES = ['auto', 'shared', 'dedicated', 'none'] as const;
const addressChoice = z.enum(ADDRESS_CHOICES);

const endpointSchema = z
  .object({
    process: name,
    port,
    target: port,
    proxy_protocol: z.enum(['none', 'v1', 'v2']).default('none'),
    /** v2 TLVs to add: the SNI name (authority), a per-connection id, a CRC32C checksum. */
    proxy_protocol_tlvs: z.array(z.enum(['authority', 'unique-id', 'crc32c'])).default([]),
    /** "passthrough": route by the TLS server name without terminating TLS; "terminate": the edge does TLS with the app's certificates (`pier certs`). */
    tls: z.enum(['none', 'passthrough', 'terminate']).default('none'),
    /** tls = "terminate": ALPN protocols offered, in order of preference (e.g. ["h2", "http/1.1"]). */
    alpn: z.array(z.string().min(1).max(255)).optional(),
    /** tls = "terminate": PEM CA bundle; clients must present a certificate it signed (mTLS). */
    client_ca: z.string().includes('-----BEGIN CERTIFICATE-----', { message: 'must be a PEM CA certificate bundle' }).optional(),
    /** Answer every HTTP request on this port with a 308 to https on the same host (usually port 80). */
    http_redirect: z.boolean().optional(),
    /** tls = "terminate": "acme" has Pier obtain and renew a certificate for each of `hostnames` (tls-alpn-01 on this port); "manual" (default): `pier certs add`. */
    certificates: z.enum(['manual', 'acme']).optional(),
    /** With certificates = "acme": the host names to get certificates for (one each). */
    hostnames: z.array(serverName.refine((n) => !n.startsWith('*.'), 'must be a host name (tls-alpn-01 cannot validate a wildcard)')).min(1).max(100).optional(),
    sni: z.array(serverName).default([]),
    sni_default: z.boolean().default(false),
    allow: z.array(cidr).default([]),
    deny: z.array(cidr).default([]),
    max_connections: z.number().int().min(1).max(1_000_000).optional(),
    max_connections_per_client: z.number().int().min(1).max(1_000_000).optional(),
    idle_timeout: duration.optional(),
    /**
     * The IPv4 address to serve on: "auto" (the default) is the app's dedicated IPv4 when it has
     * one, else the shared one; "dedicated" requires one (`pier ips allocate --v4`); "none" serves
     * no IPv4. Left out when unset, so manifests written before it keep their release hash.
     */
    ipv4: addressChoice.optional(),
    /** The IPv6 address, as ipv4: "auto" is the app's own IPv6 when it has one, else the shared one. */
    ipv6: addressChoice.optional(),
    /**
     * "private": the edge never binds it on any address; only `pier port-forward` and `pier
     * connect` reach it, through the API. Left out when unset (public), as ipv4/ipv6.
     */
    access: z.enum(['public', 'private']).optional(),
  })
  .strict()
  .superRefine((e, ctx) => {
    if (e.access === 'private') {
      for (const key of ['ipv4', 'ipv6', 'allow', 'deny', 'sni', 'max_connections_per_client'] as const) {
        const v = e[key];
        if (v !== undefined && !(Array.isArray(v) && v.length === 0)) {
          ctx.addIssue({ code: 'custom', path: [key], message: `a private endpoint is bound on no address, so ${key} means nothing: remove it, or drop access = "private"` });
        }
      }
      if (e.tls !== 'none') ctx.addIssue({ code: 'custom', path: ['tls'], message: 'a private endpoint is bound on no address, so the edge never reads its TLS: remove tls, or drop access = "private"' });
    }
    if (e.ipv4 === 'none' && e.ipv6 === 'none') {
      ctx.addIssue({ code: 'custom', path: ['ipv6'], message: 'an endpoint with ipv4 = "none" and ipv6 = "none" is served nowhere: keep one family' });
    }
    if (e.tls === 'passthrough' && e.sni.length === 0 && !e.sni_default) {
      ctx.addIssue({ code: 'custom', path: ['sni'], message: 'a passthrough endpoint needs server names (sni = ["example.com"]) or sni_default = true' });
    }
    if (e.tls !== 'passthrough' && (e.sni.length > 0 || e.sni_default)) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'sni and sni_default need tls = "passthrough"' });
    }
    if (e.tls !== 'terminate' && (e.alpn !== undefined || e.client_ca !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'alpn and client_ca need tls = "terminate"' });
    }
    if (e.certificates === 'acme' && (e.tls !== 'terminate' || e.hostnames === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['certificates'], message: 'certificates = "acme" needs tls = "terminate" and hostnames = ["www.example.com", ...]' });
    }
    if (e.hostnames !== undefined && e.certificates !== 'acme') ctx.addIssue({ code: 'custom', path: ['hostnames'], message: 'hostnames are for certificates = "acme"' });
    if (e.http_redirect === true && e.tls !== 'none') {
      ctx.addIssue({ code: 'custom', path: ['http_redirect'], message: 'http_redirect answers plain HTTP: leave tls out of this endpoint' });
    }
  });

/** A path inside the build context, written with "/": no absolute path, no way out with "..". */
const contextPath = text('line', z.string().min(1, 'must name a file, e.g. "Dockerfile"')).refine(
  (v) => !v.startsWith('/') && !v.split('/').includes('..'),
  'must be a path inside the build context (relative, without "..")',
);

/** `[build]`: build the image from a Dockerfile on the server instead of naming one. */
const buildSchema = z
  .object({
    /** The folder sent to the builder, relative to the manifest file's folder. */
    context: text('line', z.string().min(1, 'must name a folder, e.g. "."')).default('.'),
    /** Relative to the context. */
    dockerfile: contextPath.default('Dockerfile'),
    /** The stage to build in a multi-stage Dockerfile (default: the last). */
    target: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be a stage name from the Dockerfile (letters, digits, "_", ".", "-")')
      .optional(),
    /** Values for the Dockerfile's ARGs. */
    args: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be a valid ARG name'), text()).default({}),
    /** Patterns left out of the context, in .dockerignore syntax, added to the context's .dockerignore. */
    ignore: z.array(text('line', z.string().min(1, 'must not be empty'))).default([]),
  })
  .strict();
/** "512MiB", "1GiB", "10GB" → bytes. */
const size = z
  .string()
  .regex(/^\d+(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/, 'must be a size like "512MiB", "1GiB" or "10GB"')
  .transform((v) => parseSize(v));

const volumeSchema = z
  .object({
    name,
    process: name,
    /** Where the volume is mounted inside the container. */
    path: text('line', z.string().regex(/^\/./, 'must be an absolute path inside the container, e.g. "/data"')),
    /** The most the volume may hold (enforced by the btrfs driver; reported by both). */
    size: size.optional(),
    /** One volume per instance slot (`<name>-0`, `<name>-1`, …) instead of one for the process. */
    per_instance: z.boolean().default(false),
    /** How a snapshot of a running instance is taken: pause it, run the hook first, or neither (crash-consistent). */
    consistency: z.enum(['pause', 'hook', 'none']).default('none'),
    /** With consistency = "hook": a command run in the container before the snapshot, e.g. ["redis-cli", "save"]. */
    hook: z.array(text()).min(1).optional(),
    /** Take a scheduled snapshot this often ("24h", "1d"; at least "1m"). After downtime, one catch-up snapshot, not one per missed period. */
    snapshot_every: longDuration.refine((ms) => ms >= 60_000, 'must be at least "1m"').optional(),
    /** How many scheduled snapshots to keep (the newest); default 5 when snapshot_every is set and keep_for is not. */
    keep: z.number().int('must be a whole number').min(1, 'must be at least 1').max(1000, 'must be at most 1000').optional(),
    /** How long a scheduled snapshot is kept ("5d", "36h"). */
    keep_for: longDuration.refine((ms) => ms >= 60_000, 'must be at least "1m"').optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.snapshot_every === undefined) {
      if (v.keep !== undefined) ctx.addIssue({ code: 'custom', path: ['keep'], message: 'keeps scheduled snapshots, and there are none: add snapshot_every = "24h" (or remove keep)' });
      if (v.keep_for !== undefined) ctx.addIssue({ code: 'custom', path: ['keep_for'], message: 'keeps scheduled snapshots, and there are none: add snapshot_every = "24h" (or remove keep_for)' });
    }
    if (v.consistency === 'hook' && !v.hook) ctx.addIssue({ code: 'custom', path: ['hook'], message: 'consistency = "hook" needs the command to run, e.g. hook = ["redis-cli", "save"]' });
    if (v.consistency !== 'hook' && v.hook) ctx.addIssue({ code: 'custom', path: ['consistency'], message: 'a hook runs only with consistency = "hook"' });
  });

function isCidrOrAddress(value: string): boolean {
  try {
    if (value.includes('/')) ipaddr.parseCIDR(value);
    else ipaddr.parse(value);
    return true;
  } catch {
    return false;
  }
}

export const manifestSchema = z
  .object({
    app: name,
    /** Exactly one of `image` and `[build]`. */
    image: z
      .string()
      .min(1, 'must name an image, e.g. "local/echo:1"')
      .superRefine((value, ctx) => {
        const problem = value === '' ? null : imageReferenceProblem(value);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .optional(),
    build: buildSchema.optional(),
    env: env.default({}),
    processes: z.record(name, processSchema).refine((p) => Object.keys(p).length > 0, 'must define at least one process'),
    endpoints: z.array(endpointSchema).default([]),
    volumes: z.array(volumeSchema).default([]),
    private: z.array(privateSchema).default([]),
    deploy: deploySchema.default({ strategy: 'rolling', max_surge: 1, max_unavailable: 0, timeout: 120_000, drain: 5_000 }),
  })
  .strict()
  // Runs even when other fields failed (so every problem is reported at once): it only trusts
  // the shapes it checks itself.
  .superRefine(
    (m: { processes?: unknown; endpoints?: unknown; volumes?: unknown; image?: unknown; build?: unknown; private?: unknown } | null, ctx) => {
      if (isRecord(m) && m.image === undefined && m.build === undefined) {
        ctx.addIssue({ code: 'custom', path: ['image'], message: 'is required: name an image (image = "local/echo:1"), or build one with a [build] table (context = ".")' });
      }
      if (isRecord(m) && m.image !== undefined && m.build !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['build'], message: 'image and [build] are mutually exclusive: remove image to build from the Dockerfile, or remove [build] to run the image' });
      }
      const processes = isRecord(m?.processes) ? m.processes : null;
      const volumeNames = new Set<string>();
      const mounts = new Set<string>();
      (Array.isArray(m?.volumes) ? (m.volumes as unknown[]) : []).forEach((v, i) => {
        if (!isRecord(v)) return;
        if (processes && typeof v.process === 'string' && !Object.hasOwn(processes, v.process)) {
          ctx.addIssue({ code: 'custom', path: ['volumes', i, 'process'], message: `names no process; define [processes.${v.process}] or use one of: ${Object.keys(processes).join(', ')}` });
        }
        if (typeof v.name === 'string') {
          if (volumeNames.has(v.name)) ctx.addIssue({ code: 'custom', path: ['volumes', i, 'name'], message: `volume "${v.name}" is defined twice` });
          volumeNames.add(v.name);
        }
        const mount = `${String(v.process)}\u0000${String(v.path)}`;
        if (mounts.has(mount)) ctx.addIssue({ code: 'custom', path: ['volumes', i, 'path'], message: `another volume of process ${String(v.process)} is mounted at ${String(v.path)}` });
        mounts.add(mount);
        const p = processes && typeof v.process === 'string' ? processes[v.process] : undefined;
        if (v.per_instance !== true && isRecord(p) && typeof p.count === 'number' && p.count > 1) {
          ctx.addIssue({ code: 'custom', path: ['volumes', i, 'per_instance'], message: `process ${String(v.process)} runs ${p.count} instances, and a volume has one writer: set per_instance = true (a volume per instance) or count = 1` });
        }
      });
      const ports = new Set<number>();
      (Array.isArray(m?.endpoints) ? (m.endpoints as unknown[]) : []).forEach((e, i) => {
        if (!isRecord(e)) return;
        if (processes && typeof e.process === 'string' && !Object.hasOwn(processes, e.process)) {
          ctx.addIssue({ code: 'custom', path: ['endpoints', i, 'process'], message: `names no process; define [processes.${e.process}] or use one of: ${Object.keys(processes).join(', ')}` });
        }
        if (typeof e.port !== 'number') return;
        if (ports.has(e.port)) ctx.addIssue({ code: 'custom', path: ['endpoints', i, 'port'], message: `port ${e.port} is used by another endpoint of this app` });
        ports.add(e.port);
      });
      const offering = new Set<string>();
      (Array.isArray(m?.private) ? (m.private as unknown[]) : []).forEach((p, i) => {
        if (!isRecord(p) || typeof p.process !== 'string') return;
        if (processes && !Object.hasOwn(processes, p.process)) {
          ctx.addIssue({ code: 'custom', path: ['private', i, 'process'], message: `names no process; define [processes.${p.process}] or use one of: ${Object.keys(processes).join(', ')}` });
        }
        const protocol = p.protocol === 'udp' ? 'udp' : 'tcp';
        if (offering.has(`${p.process}/${protocol}`)) ctx.addIssue({ code: 'custom', path: ['private', i, 'process'], message: `process ${p.process} has another [[private]] entry for ${protocol}: list all its ${protocol} ports in one` });
        offering.add(`${p.process}/${protocol}`);
      });
    },
    { when: () => true },
  );

export type Manifest = z.infer<typeof manifestSchema> & {
  /** The `[env.NAME]` tables (api/environment-overrides.ts); deploys take them out before storing the manifest. */
  overrides?: Record<string, EnvOverride>;
};
export type ProcessSpec = Manifest['processes'][string];
export type EndpointSpec = Manifest['endpoints'][number];
export type CheckSpec = NonNullable<ProcessSpec['check']>;
export type DeploySpec = Manifest['deploy'];
export type BuildSpec = NonNullable<Manifest['build']>;
export type VolumeSpec = Manifest['volumes'][number];

const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4 };

export function parseSize(text: string): number {
  const m = /^(\d+)([A-Za-z]+)$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2] as string] : undefined;
  if (!m || unit === undefined) throw new Error(`not a size: ${text}`);
  return Number(m[1]) * unit;
}

/**
 * A volume has one writer, so the process groups that mount one roll out stop-then-start per
 * slot. Checked on the document as written: the default rolling deploy is fine (it is run
 * stop-then-start for them), an explicit bluegreen or max_surge is refused with the reason.
 */
function volumeRolloutIssues(doc: unknown): z.core.$ZodIssue[] {
  if (!isRecord(doc) || !Array.isArray(doc.volumes) || doc.volumes.length === 0) return [];
  const deploy = isRecord(doc.deploy) ? doc.deploy : {};
  const withVolumes = [...new Set(doc.volumes.filter(isRecord).map((v) => String(v.process)))].join(', ');
  const why = `process ${withVolumes} mounts a volume, which has one writer: its instances are replaced stop-then-start, one slot at a time`;
  const issues: z.core.$ZodIssue[] = [];
  const issue = (path: string[], message: string) => issues.push({ code: 'custom', path, message, input: undefined } as z.core.$ZodIssue);
  if (deploy.strategy === 'bluegreen') issue(['deploy', 'strategy'], `bluegreen would run the new instances beside the old ones: ${why}; use strategy = "rolling" or "immediate"`);
  if (typeof deploy.max_surge === 'number' && deploy.max_surge > 0) issue(['deploy', 'max_surge'], `a surge would start a new instance before the old one stops: ${why}; remove max_surge or set it to 0`);
  return issues;
}

function check(whole: unknown): { success: true; data: Manifest } | { success: false; issues: z.core.$ZodIssue[] } {
  // `[env.NAME]` tables are environment overrides (api/environment-overrides.ts), not variables.
  const split = splitOverrides(whole);
  const doc = split.doc;
  const result = manifestSchema.safeParse(doc);
  const extra = [...volumeRolloutIssues(doc), ...split.issues.map((i) => ({ code: 'custom', path: i.path, message: i.message, input: undefined }) as z.core.$ZodIssue)];
  if (result.success && extra.length === 0) return { success: true, data: Object.keys(split.overrides).length ? { ...result.data, overrides: split.overrides } : result.data };
  return { success: false, issues: [...(result.success ? [] : result.error.issues), ...extra] };
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new Error(`not a duration: ${text}`);
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

export interface ManifestProblem {
  /** Dotted path of the field, e.g. `endpoints[0].port`; empty for the document itself. */
  path: string;
  message: string;
  line?: number;
  column?: number;
}

/** Parses and validates TOML text; throws E_MANIFEST_INVALID listing every problem at its line and column. */
export function parseManifest(text: string, file = 'pier.toml'): Manifest {
  let doc: unknown;
  try {
    doc = parseToml(text);
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? 'invalid TOML';
      throw invalid(file, [{ path: '', message: `not valid TOML: ${reason}`, line: err.line, column: err.column }]);
    }
    throw err;
  }
  const result = check(doc);
  if (result.success) return result.data;
  throw invalid(file, problemsOf(result.issues, doc, indexTomlPositions(text)));
}

/** Validates an already-parsed manifest object (no positions: there is no text). */
export function validateManifest(doc: unknown, file = 'pier.toml'): Manifest {
  const result = check(doc);
  if (result.success) return result.data;
  throw invalid(file, problemsOf(result.issues, doc, null));
}

/** The problems an E_MANIFEST_INVALID error lists (the first MAX_LISTED_PROBLEMS) and how many it found; null for any other error. */
export function manifestProblems(err: unknown): { problems: ManifestProblem[]; total: number } | null {
  if (!(err instanceof PierError) || err.code !== 'E_MANIFEST_INVALID') return null;
  const problems = err.details as ManifestProblem[];
  return { problems, total: problemTotals.get(err) ?? problems.length };
}

const problemTotals = new WeakMap<PierError, number>();

function problemsOf(issues: z.core.$ZodIssue[], doc: unknown, positions: TomlPositionIndex | null): ManifestProblem[] {
  const problems: (ManifestProblem & { sort: number; missing: boolean })[] = [];
  // A misspelt required key is reported once, as the misspelling (with the suggestion).
  const explained = new Set<string>();
  const at = (path: PropertyKey[], onValue: boolean): Pick<ManifestProblem, 'line' | 'column'> => {
    const found = positions?.nearest(path.map((p) => (typeof p === 'number' ? p : String(p))));
    if (!found) return positions ? { line: 1, column: 1 } : {};
    const pos = found.up === 0 && onValue ? (found.entry.value ?? found.entry.key) : found.entry.key;
    return { line: pos.line, column: pos.column };
  };
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const allowed = keysAt(issue.path);
      for (const key of issue.keys) {
        const suggestion = closestKey(key, allowed);
        if (suggestion) explained.add(formatPath([...issue.path, suggestion]));
        const message = `unknown key "${key}"${suggestion ? ` — did you mean "${suggestion}"?` : ''}`;
        problems.push({ path: formatPath(issue.path), message, ...at([...issue.path, key], false), sort: problems.length, missing: false });
      }
      continue;
    }
    const missing = valueAt(doc, issue.path) === undefined;
    const message = missing && issue.code === 'invalid_type' ? `is required (${issue.expected})` : issue.message.replace(/^Invalid input: /, '');
    problems.push({ path: formatPath(issue.path), message, ...at(issue.path, !missing), sort: problems.length, missing });
  }
  return problems
    .filter((p) => !(p.missing && explained.has(p.path)))
    .sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0) || a.sort - b.sort)
    .map(({ path, message, line, column }) => (line === undefined ? { path, message } : { path, message, line, column }));
}

/** The keys the schema allows in the object at `path` (for suggestions). */
function keysAt(path: PropertyKey[]): string[] {
  let def = unwrap(manifestSchema);
  for (const p of path) {
    if (def.type === 'object') def = unwrap(def.shape?.[String(p)]);
    else if (def.type === 'record') def = unwrap(def.valueType);
    else if (def.type === 'array') def = unwrap(def.element);
    else return [];
  }
  return def.type === 'object' ? Object.keys(def.shape ?? {}) : [];
}

interface SchemaDef {
  type: string;
  shape?: Record<string, unknown>;
  valueType?: unknown;
  element?: unknown;
  innerType?: unknown;
  in?: unknown;
}

function unwrap(schema: unknown): SchemaDef {
  let def = (schema as { _zod?: { def: SchemaDef } } | undefined)?._zod?.def;
  while (def && (def.innerType !== undefined || def.type === 'pipe')) {
    def = (((def.type === 'pipe' ? def.in : def.innerType) as { _zod?: { def: SchemaDef } }) ?? {})._zod?.def;
  }
  return def ?? { type: 'unknown' };
}

function valueAt(doc: unknown, path: PropertyKey[]): unknown {
  let v = doc;
  for (const p of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, p)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function formatPath(path: PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

/** `file:line:column: path: message`, the form editors and CI annotations understand. */
export function formatManifestProblem(file: string, p: ManifestProblem): string {
  const where = p.line ? `${file}:${p.line}:${p.column ?? 1}` : file;
  return `${where}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

/** An error lists at most this many problems (and says how many there are): a manifest with
 * thousands of mistakes gets an answer of a few kilobytes, not one larger than itself. */
export const MAX_LISTED_PROBLEMS = 50;
const MAX_PROBLEM_TEXT = 300;

function invalid(file: string, all: ManifestProblem[]): PierError {
  const problems = all.slice(0, MAX_LISTED_PROBLEMS).map((p) => ({ ...p, path: clip(p.path), message: clip(p.message) }));
  const lines = problems.map((p) => formatManifestProblem(clip(file), p));
  const more = all.length - problems.length;
  const head = more > 0 ? `the manifest is not valid: ${all.length} problems, the first ${problems.length} listed` : 'the manifest is not valid';
  const err = new PierError('E_MANIFEST_INVALID', `${head}:\n  ${lines.join('\n  ')}${more > 0 ? `\n  … and ${more} more` : ''}`, {
    status: 422,
    hint: 'fix the fields listed above; docs/manifest.md describes every key',
    details: problems,
  });
  problemTotals.set(err, all.length);
  return err;
}

function clip(text: string): string {
  return text.length > MAX_PROBLEM_TEXT ? `${text.slice(0, MAX_PROBLEM_TEXT)}…` : text;
}
