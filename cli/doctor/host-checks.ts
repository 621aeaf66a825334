// What `pier doctor` checks on this host, without a running server: Node, the container engine,
// the database, the data folder, the open-files limit and IPv6 on loopback. Each check says what it
// found and, when it is not fine, how to fix it; none throws.
import { readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import Docker from 'dockerode';
import postgres from 'postgres';
import type { ServerConfig } from '../../api/config.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  message: string;
  /** What to do about it (warn and fail only). */
  fix?: string;
}

/** An edge holds two descriptors per proxied connection: below this, it is a toy. */
export const MIN_OPEN_FILES = 4096;
export const GOOD_OPEN_FILES = 65536;

const { engines } = createRequire(import.meta.url)('../../../package.json') as { engines: { node: string } };

export function checkNode(version = process.versions.node): CheckResult {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  const floor: Record<number, number> = { 20: 19, 22: 12, 24: 0, 26: 0 };
  const ok = floor[major] !== undefined && minor >= (floor[major] ?? 0);
  return ok
    ? { name: 'node', status: 'ok', message: `Node.js ${version}` }
    : { name: 'node', status: 'fail', message: `Node.js ${version} is not one Pier supports (${engines.node})`, fix: 'install Node.js 24 (the current LTS), 22.12+ or 20.19+' };
}

export async function checkDocker(socketPath: string): Promise<CheckResult> {
  const docker = new Docker({ socketPath, timeout: 5000 });
  try {
    const v = await docker.version();
    return { name: 'docker', status: 'ok', message: `Docker Engine ${v.Version} (API ${v.ApiVersion}) at ${socketPath}` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const fix =
      code === 'EACCES'
        ? `let this user use ${socketPath} (the docker group), or run as root`
        : `start the Docker engine (\`systemctl start docker\`, or \`dockerd &\`), or point DOCKER_HOST at its socket`;
    return { name: 'docker', status: 'fail', message: `the Docker engine does not answer at ${socketPath}: ${code ?? (err as Error).message}`, fix };
  }
}

/** PostgreSQL (DATABASE_URL): reachable, migrated as far as this Pier's migrations go, and its clock. */
export async function checkDatabase(config: ServerConfig, journalEntries: number): Promise<CheckResult[]> {
  if (!config.databaseUrl) {
    const dir = `${config.dataDir}/db`;
    const made = await stat(`${dir}/PG_VERSION`).then(
      () => true,
      () => false,
    );
    return [
      made
        ? { name: 'database', status: 'ok', message: `embedded database (PGlite) at ${dir}` }
        : { name: 'database', status: 'warn', message: `the embedded database at ${dir} is not created yet`, fix: 'run `pier server` once: it creates and migrates it' },
    ];
  }
  const sql = postgres(config.databaseUrl, { max: 1, connect_timeout: 5, onnotice: () => {} });
  const where = redact(config.databaseUrl);
  try {
    const [row] = await sql<{ now: Date }[]>`select now() as now`;
    const checks: CheckResult[] = [];
    const applied = await sql<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`.then(
      (rows) => rows[0]?.n ?? 0,
      () => 0,
    );
    checks.push(
      applied >= journalEntries
        ? { name: 'database', status: 'ok', message: `PostgreSQL at ${where}, ${applied} migrations applied` }
        : { name: 'database', status: 'warn', message: `PostgreSQL at ${where} has ${applied} of ${journalEntries} migrations`, fix: 'start `pier server` (this version) once: it migrates at start' },
    );
    if (row) checks.push(clockCheck('clock (database)', row.now.getTime() - Date.now(), 'the database server'));
    return checks;
  } catch (err) {
    return [{ name: 'database', status: 'fail', message: `PostgreSQL at ${where} does not answer: ${(err as Error).message}`, fix: 'start PostgreSQL, or fix DATABASE_URL (host, port, user, password, database)' }];
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

export async function checkDataFolder(dir: string): Promise<CheckResult> {
  const st = await stat(dir).catch(() => null);
  if (!st) return { name: 'data folder', status: 'warn', message: `${dir} does not exist yet`, fix: 'run `pier server` once: it creates it, private to its user' };
  if (!st.isDirectory()) return { name: 'data folder', status: 'fail', message: `${dir} is not a folder`, fix: 'move it away, or point PIER_DATA_DIR elsewhere' };
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    return { name: 'data folder', status: 'fail', message: `${dir} belongs to uid ${st.uid}, not to this user (${uid})`, fix: `run Pier as its owner, or \`chown -R ${uid} ${dir}\`` };
  }
  if ((st.mode & 0o077) !== 0) {
    return { name: 'data folder', status: 'fail', message: `${dir} is open to others (mode ${(st.mode & 0o777).toString(8)}): it holds tokens`, fix: `\`chmod 700 ${dir}\` (pier server also does it at start)` };
  }
  return { name: 'data folder', status: 'ok', message: `${dir}, private (mode 700)` };
}

/** The hard limit is what counts: Node raises the soft limit to it at start. */
export async function checkOpenFiles(limitsText?: string): Promise<CheckResult> {
  const text = limitsText ?? (await readFile('/proc/self/limits', 'utf8').catch(() => ''));
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const hard = line?.slice('Max open files'.length).trim().split(/\s+/)[1];
  if (hard === undefined) return { name: 'open files', status: 'skip', message: 'cannot read /proc/self/limits' };
  if (hard === 'unlimited') return { name: 'open files', status: 'ok', message: 'no limit on open files' };
  const n = Number(hard);
  const conns = Math.floor(n / 2);
  const fix = `raise the hard limit to ${GOOD_OPEN_FILES} or more: \`ulimit -Hn ${GOOD_OPEN_FILES}\` in the service's shell, LimitNOFILE=${GOOD_OPEN_FILES} in its systemd unit, or nofile in /etc/security/limits.conf`;
  if (n < MIN_OPEN_FILES) return { name: 'open files', status: 'fail', message: `the open-files limit is ${n}: the edge could hold about ${conns} connections (two descriptors each)`, fix };
  if (n < GOOD_OPEN_FILES) return { name: 'open files', status: 'warn', message: `the open-files limit is ${n}: about ${conns} proxied connections at most`, fix };
  return { name: 'open files', status: 'ok', message: `open-files limit ${n} (about ${conns} proxied connections)` };
}

export async function checkIpv6Loopback(): Promise<CheckResult> {
  const problem = await new Promise<string | null>((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host: '::1', port: 0 }, () => server.close(() => resolve(null)));
  });
  return problem === null
    ? { name: 'ipv6 loopback', status: 'ok', message: '::1 can be bound' }
    : {
        name: 'ipv6 loopback',
        status: 'warn',
        message: `cannot listen on ::1 (${problem}): the edge serves IPv4 only`,
        fix: 'enable IPv6 on lo (`sysctl net.ipv6.conf.lo.disable_ipv6=0`), or start pier server with PIER_EDGE_IPV6=off to say so',
      };
}

export function clockCheck(name: string, skewMs: number, other: string): CheckResult {
  const s = (Math.abs(skewMs) / 1000).toFixed(1);
  if (Math.abs(skewMs) <= 2000) return { name, status: 'ok', message: `${other} and this host agree within ${s} s` };
  return { name, status: 'warn', message: `${other}'s clock is ${s} s ${skewMs > 0 ? 'ahead of' : 'behind'} this host's`, fix: 'run NTP (chrony or systemd-timesyncd) on every machine: event times, token expiry and edge liveness compare clocks' };
}

/** The URL without its password. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(DATABASE_URL)';
  }
}
