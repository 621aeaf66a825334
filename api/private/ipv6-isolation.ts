// Keeps other networks out of a private network over IPv6. Docker 20.10 isolates bridge networks
// from each other for IPv4 only (its ip6tables support is experimental and off by default), and
// the host forwards IPv6 between bridges: without this rule a container of another organisation
// could open connections to this network's fd… addresses. One rule per private /64, first in the
// FORWARD chain: a new connection into the /64 from outside it is dropped. Traffic inside the /64
// and from the host itself (the edge, the checks: OUTPUT, not FORWARD) is untouched.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from 'pino';

const exec = promisify(execFile);

export interface Ipv6Isolation {
  /** Makes sure the rule for the subnet is in place; returns why it cannot be, or null. */
  isolate(subnet: string): Promise<string | null>;
}

export function createIpv6Isolation(options: { log: Logger; binary?: string }): Ipv6Isolation {
  const binary = options.binary ?? 'ip6tables';
  const rule = (subnet: string) => ['-d', subnet, '!', '-s', subnet, '-m', 'conntrack', '--ctstate', 'NEW', '-m', 'comment', '--comment', 'pier private network', '-j', 'DROP'];
  return {
    async isolate(subnet) {
      try {
        await exec(binary, ['-w', '5', '-C', 'FORWARD', ...rule(subnet)]);
        return null;
      } catch {
        // Not there yet (or no ip6tables at all: the insert says which).
      }
      try {
        await exec(binary, ['-w', '5', '-I', 'FORWARD', '1', ...rule(subnet)]);
        options.log.info({ subnet }, 'ipv6 isolation rule added');
        return null;
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { stderr?: string };
        const why = e.code === 'ENOENT' ? `${binary} is not installed` : (e.stderr ?? e.message).trim().split('\n')[0];
        return `other networks can reach ${subnet} over IPv6: cannot add the ${binary} rule (${why}); run pier server as root (or with CAP_NET_ADMIN), or enable "ip6tables" in Docker's daemon.json`;
      }
    },
  };
}
