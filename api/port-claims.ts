// Public ports held by apps, enforced by the database (db/schema/port-claims.ts): the claims of an
// app's endpoints are written in the same transaction as the endpoint rows, so two deploys racing
// for one port cannot both commit, and the edge never gets a snapshot where two apps bind one
// address:port. A violation becomes E_PORT_IN_USE naming who holds the port, read after the
// rollback from what is committed.
import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Db } from '../db/database.js';
import { apps, portClaims, portModes, type Endpoint, type PortMode } from '../db/schema/index.js';
import type { AuthContext } from './auth.js';
import { sharedMarkerFamily } from './endpoint-bindings.js';
import { foreignKeyViolation, uniqueViolation } from './database-errors.js';
import { PierError } from './pier-error.js';

/**
 * Endpoints without bindings are served on every edge's shared addresses, which each edge sets for
 * itself (--ipv4/--ipv6): the API cannot name them, so they are all claimed under this one symbol.
 */
export const SHARED_ADDRESS = '*';
/** The claim name of a tcp endpoint; a passthrough endpoint claims each SNI name, and '*' as default. */
const TCP_NAME = '';
const SNI_DEFAULT = '*';

export interface PortClaimSpec {
  address: string;
  port: number;
  name: string;
  mode: PortMode;
}

type ClaimSource = Pick<Endpoint, 'port' | 'tls' | 'sni' | 'sniDefault' | 'bindings'> & { access?: Endpoint['access'] | undefined };

/** The claims an endpoint needs: one per address and SNI name (one per address for tcp). */
export function claimsOf(e: ClaimSource): PortClaimSpec[] {
  // A private endpoint is bound nowhere: its port is the app's own name for it, not a public port.
  if (e.access === 'private') return [];
  // Both families' shared addresses are one claim ('*'): an edge's shared IPv4 and IPv6 are set
  // per edge, and an app on one of them keeps the port from the other apps on either.
  const addresses = e.bindings.length ? [...new Set(e.bindings.map((b) => (sharedMarkerFamily(b) ? SHARED_ADDRESS : b)))] : [SHARED_ADDRESS];
  const mode: PortMode = e.tls === 'passthrough' ? 'tls' : 'tcp';
  const names = mode === 'tcp' ? [TCP_NAME] : [...new Set(e.sni.map((n) => n.toLowerCase())), ...(e.sniDefault ? [SNI_DEFAULT] : [])];
  return addresses.flatMap((address) => names.map((name) => ({ address, port: e.port, name, mode })));
}

/**
 * Makes the app's claims those of `rows` (its endpoint rows, already written). Throws the
 * database's violation when another app holds one of the ports: the caller's transaction is then
 * lost, and portInUse() explains it.
 */
export async function writeClaims(tx: Db, appId: string, rows: (ClaimSource & { id: string })[]): Promise<void> {
  await tx.delete(portClaims).where(eq(portClaims.appId, appId));
  const claims = rows.flatMap((r) => claimsOf(r).map((c) => ({ ...c, appId, endpointId: r.id })));
  const modes = new Map<string, PortClaimSpec>();
  for (const c of claims) modes.set(`${c.address}\0${c.port}`, c);
  for (const { address, port, mode } of modes.values()) {
    // A mode row no claim uses any more (its endpoints were removed) gives way to this one. One that
    // another transaction is claiming makes this delete fail on the foreign key: a clash, as it is.
    await tx.execute(sql`
      delete from ${portModes} m
      where m.address = ${address} and m.port = ${port} and m.mode <> ${mode}
        and not exists (select 1 from ${portClaims} c where c.address = m.address and c.port = m.port)`);
    // The update changes nothing; it locks the row, so the mode cannot go while this claim is made.
    await tx
      .insert(portModes)
      .values({ address, port, mode })
      .onConflictDoUpdate({ target: [portModes.address, portModes.port], set: { mode: sql.raw('"port_modes"."mode"') } });
  }
  if (claims.length) await tx.insert(portClaims).values(claims);
}

/** The constraints whose violation means "the port is taken". */
const CLAIM_CONSTRAINTS = new Set(['port_claims_address_port_name', 'port_claims_mode', 'port_modes_pkey', 'port_modes_address_port_mode']);

export function isClaimViolation(err: unknown): boolean {
  const name = uniqueViolation(err) ?? foreignKeyViolation(err);
  return name !== null && CLAIM_CONSTRAINTS.has(name);
}

/** A committed claim of another app that stands in the way of `wanted`. */
export interface ClaimConflict {
  wanted: PortClaimSpec;
  holder: { appId: string; appName: string; orgId: string; mode: PortMode; name: string };
}

/** The committed claims of other apps that clash with `wanted`, one per wanted port at most. */
export async function findConflicts(db: Db, appId: string | null, wanted: PortClaimSpec[]): Promise<ClaimConflict[]> {
  if (wanted.length === 0) return [];
  const ports = [...new Set(wanted.map((w) => w.port))];
  const held = await db
    .select({ address: portClaims.address, port: portClaims.port, name: portClaims.name, mode: portClaims.mode, appId: portClaims.appId, appName: apps.name, orgId: apps.orgId })
    .from(portClaims)
    .innerJoin(apps, eq(apps.id, portClaims.appId))
    .where(and(inArray(portClaims.port, ports), appId ? ne(portClaims.appId, appId) : undefined));
  const out: ClaimConflict[] = [];
  const seen = new Set<string>();
  for (const w of wanted) {
    const key = `${w.address}\0${w.port}`;
    if (seen.has(key)) continue;
    const clash = held.find((h) => h.address === w.address && h.port === w.port && (h.mode !== w.mode || h.name === w.name));
    if (!clash) continue;
    seen.add(key);
    out.push({ wanted: w, holder: { appId: clash.appId, appName: clash.appName, orgId: clash.orgId, mode: clash.mode, name: clash.name } });
  }
  return out;
}

/** Who may be told the holder's name: a token of its org that is not bound to another app. */
export type Viewer = Pick<AuthContext, 'orgId' | 'appId'>;

/** E_PORT_IN_USE for the first conflict, naming the holder to whoever may see it. */
export function portInUse(conflict: ClaimConflict | undefined, viewer: Viewer, options: { port?: number | undefined; cause?: unknown } = {}): PierError {
  const { port, cause } = options;
  if (!conflict) {
    // The holder let go between the refusal and this look: nothing stands in the way now.
    return new PierError('E_PORT_IN_USE', `port ${port ?? '?'} was claimed by another deploy at the same moment, which has released it since`, {
      status: 409,
      hint: 'run the deploy again',
      details: port === undefined ? {} : { port },
      cause,
    });
  }
  const { wanted: w, holder: h } = conflict;
  const visible = h.orgId === viewer.orgId && (viewer.appId === null || viewer.appId === h.appId);
  const owner = visible ? `app "${h.appName}"` : h.orgId === viewer.orgId ? 'another app' : 'an app of another org';
  const where = w.address === SHARED_ADDRESS ? `port ${w.port}` : `${w.address.includes(':') ? `[${w.address}]` : w.address}:${w.port}`;
  const free = visible ? `, or free it (deploy ${h.appName} without it, or \`pier apps delete ${h.appName}\`)` : '';
  let message: string;
  let hint: string;
  if (h.mode !== w.mode) {
    message =
      h.mode === 'tls'
        ? `${where} is shared by TLS passthrough endpoints (${owner} holds it), and a plain tcp endpoint cannot join them`
        : `${where} is held by ${owner} for a plain tcp endpoint, which shares its port with no one`;
    hint = `choose another port${free}; only tls = "passthrough" endpoints with distinct sni names share a port`;
  } else if (w.mode === 'tcp') {
    message = `${where} is held by ${owner}`;
    hint = `choose another port${free}; only tls = "passthrough" endpoints with distinct sni names share a port`;
  } else if (w.name === SNI_DEFAULT) {
    message = `${where} already has an SNI default: ${owner} (sni_default = true)`;
    hint = 'only one endpoint on a port may be the default: name your server names in sni instead';
  } else {
    message = `the server name "${w.name}" on ${where} is already served by ${owner}`;
    hint = `use server names no other endpoint on this port serves${free}`;
  }
  return new PierError('E_PORT_IN_USE', message, {
    status: 409,
    hint,
    cause,
    details: {
      port: w.port,
      ...(w.address === SHARED_ADDRESS ? {} : { address: w.address }),
      ...(visible ? { app: h.appName } : {}),
      ...(w.mode === 'tls' && h.mode === 'tls' ? { sni: w.name === SNI_DEFAULT ? null : w.name, sniDefault: w.name === SNI_DEFAULT } : {}),
    },
  });
}

/**
 * Removes port modes no claim uses (left by removed endpoints and deleted apps), skipping rows a
 * transaction is claiming now. Tidiness only: a stale mode row never blocks a claim (writeClaims).
 */
export async function releaseUnusedPorts(db: Db, log: Logger): Promise<void> {
  try {
    await db.execute(sql`
      delete from ${portModes} where (address, port) in (
        select m.address, m.port from ${portModes} m
        where not exists (select 1 from ${portClaims} c where c.address = m.address and c.port = m.port)
        for update skip locked)`);
  } catch (err) {
    log.warn({ err }, 'unused port modes not removed; the next deploy tries again');
  }
}

/** The claims of these endpoint specs that another app holds now (committed), for a revert. */
export async function conflictsOf(db: Db, appId: string, sources: ClaimSource[]): Promise<ClaimConflict[]> {
  return findConflicts(db, appId, sources.flatMap(claimsOf));
}
