// Can the edge on this host bind the addresses of each pool? Checked at start by binding the
// pool's first usable address (port 0, closed at once), so a pool the host does not route to it
// is reported with the fix then, not later as one failed deploy after another. An IPv6 prefix
// routed to `lo` (AnyIP) is not enough for Node, which cannot set IPV6_FREEBIND: it needs
// net.ipv6.ip_nonlocal_bind=1, or each address on `lo`.
import net from 'node:net';
import { addressAt, type IpPool } from './ip-pool.js';
import { PierError } from './pier-error.js';

export interface PoolBindProblem {
  pool: string;
  /** The address tried (the pool's first usable one). */
  address: string;
  /** The system's error code, e.g. EADDRNOTAVAIL. */
  errno: string;
  /** What to run to fix it. */
  fix: string;
}

/** The pools whose first address this host cannot bind, each with the fix; [] when all bind. */
export async function preflightPools(pools: IpPool[]): Promise<PoolBindProblem[]> {
  const problems: PoolBindProblem[] = [];
  for (const pool of pools) {
    const address = addressAt(pool, 0n);
    const errno = await tryBind(address);
    if (errno !== null) problems.push({ pool: pool.cidr, address, errno, fix: fixFor(pool, errno) });
  }
  return problems;
}

/** E_POOL_NOT_BINDABLE for one problem: what failed and the fix. */
export function poolNotBindable(p: PoolBindProblem): PierError {
  return new PierError('E_POOL_NOT_BINDABLE', `the edge cannot bind addresses of the pool ${p.pool}: binding ${p.address} failed with ${p.errno}`, {
    status: 500,
    hint: p.fix,
    details: { ...p },
  });
}

function fixFor(pool: IpPool, errno: string): string {
  if (errno !== 'EADDRNOTAVAIL') return `check that this host may bind addresses of ${pool.cidr} (${errno})`;
  if (pool.family === 'ipv6') {
    return `route the prefix to this host (e.g. \`ip -6 route add local ${pool.cidr} dev lo\`) and let Node bind it: \`sysctl -w net.ipv6.ip_nonlocal_bind=1\` (or add each address: \`ip addr add ADDRESS/128 dev lo nodad\`)`;
  }
  return `route the range to this host, e.g. \`ip route add local ${pool.cidr} dev lo\``;
}

/** null when the address binds; else the error code. */
function tryBind(address: string): Promise<string | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host: address, port: 0, exclusive: true }, () => server.close(() => resolve(null)));
  });
}
