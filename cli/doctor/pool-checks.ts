// `pier doctor` on an edge host with address pools: can the edge bind each pool's addresses? An
// IPv6 prefix routed to `lo` (AnyIP) binds from Node only with net.ipv6.ip_nonlocal_bind=1 (Node
// cannot set IPV6_FREEBIND), or with each address on `lo`; the check reads the sysctl and tries
// the pool's first address as the server's start-up preflight does (api/pool-preflight.ts).
import { readFile } from 'node:fs/promises';
import type { IpPool } from '../../api/ip-pool.js';
import { preflightPools, type PoolBindProblem } from '../../api/pool-preflight.js';
import type { CheckResult } from './host-checks.js';

const SYSCTL = '/proc/sys/net/ipv6/ip_nonlocal_bind';
const NAME = 'ip pools';

/** Judges the pools from the sysctl's value (null: unreadable) and the bind problems found. */
export function judgePools(pools: IpPool[], nonlocalBind: string | null, problems: PoolBindProblem[]): CheckResult {
  if (pools.length === 0) return { name: NAME, status: 'skip', message: 'no address pool configured (--ip-pool, PIER_IP_POOLS)' };
  const v6 = pools.filter((p) => p.family === 'ipv6');
  const sysctl = nonlocalBind === null ? 'unreadable' : nonlocalBind.trim();
  if (problems.length) {
    const v6Problem = problems.some((p) => v6.some((v) => v.cidr === p.pool) && p.errno === 'EADDRNOTAVAIL');
    return {
      name: NAME,
      status: 'fail',
      message: `the edge cannot bind ${problems.map((p) => `${p.pool} (${p.errno} on ${p.address})`).join(', ')}${v6Problem ? `; net.ipv6.ip_nonlocal_bind is ${sysctl}` : ''}`,
      fix: problems.map((p) => p.fix).join('; '),
    };
  }
  const list = pools.map((p) => p.cidr).join(', ');
  if (v6.length === 0) return { name: NAME, status: 'ok', message: `the edge can bind ${list}` };
  if (sysctl === '1') return { name: NAME, status: 'ok', message: `the edge can bind ${list} (net.ipv6.ip_nonlocal_bind=1)` };
  // Bound without the sysctl: the addresses are on an interface. Only the first one was tried.
  return {
    name: NAME,
    status: 'warn',
    message: `the edge can bind the first address of ${list}, but net.ipv6.ip_nonlocal_bind is ${sysctl}: any other IPv6 address of a pool binds only if it is on an interface too`,
    fix: `\`sysctl -w net.ipv6.ip_nonlocal_bind=1\` (and net.ipv6.ip_nonlocal_bind=1 in /etc/sysctl.d/ to keep it), or add each address: \`ip addr add ADDRESS/128 dev lo nodad\``,
  };
}

export async function checkPools(pools: IpPool[], edgeHere: boolean): Promise<CheckResult> {
  if (!edgeHere && pools.length) return { name: NAME, status: 'skip', message: 'no edge runs here (PIER_ROLE): check the pools on the edge hosts' };
  if (pools.length === 0) return judgePools(pools, null, []);
  const sysctl = await readFile(SYSCTL, 'utf8').catch(() => null);
  return judgePools(pools, sysctl, await preflightPools(pools));
}
