// Which addresses an endpoint binds, from its manifest's `ipv4`/`ipv6` choices and the app's
// dedicated addresses (api/ip-service.ts). The endpoint row stores the result: literal addresses,
// and a marker for "the edge's shared address of this family", which each edge knows itself.
// An empty list is both shared addresses (rows made before addresses were resources).
import type { IpFamily } from '../db/schema/index.js';
import type { EndpointSpec } from './manifest.js';
import { PierError } from './pier-error.js';

export const SHARED_IPV4 = '*4';
export const SHARED_IPV6 = '*6';

/** The marker of a family's shared address, or null for a literal address. */
export function sharedMarkerFamily(binding: string): IpFamily | null {
  return binding === SHARED_IPV4 ? 'ipv4' : binding === SHARED_IPV6 ? 'ipv6' : null;
}

export interface BindingProblem {
  port: number;
  family: IpFamily;
}

/**
 * The bindings of one endpoint. A family set to "dedicated" that the app has no address of is a
 * problem the caller refuses (a deploy) or drops (a revert to a release whose address is gone).
 */
export function resolveBindings(spec: Pick<EndpointSpec, 'port' | 'ipv4' | 'ipv6'>, own: Partial<Record<IpFamily, string>>): { bindings: string[]; problems: BindingProblem[] } {
  const bindings: string[] = [];
  const problems: BindingProblem[] = [];
  for (const family of ['ipv4', 'ipv6'] as const) {
    const choice = spec[family] ?? 'auto';
    const mine = own[family];
    const shared = family === 'ipv4' ? SHARED_IPV4 : SHARED_IPV6;
    if (choice === 'none') continue;
    if (choice === 'shared') bindings.push(shared);
    else if (mine) bindings.push(mine);
    else if (choice === 'auto') bindings.push(shared);
    else problems.push({ port: spec.port, family });
  }
  // Both shared is how rows always said it: an unchanged app keeps its rows (and revisions).
  return { bindings: bindings.length === 2 && bindings[0] === SHARED_IPV4 && bindings[1] === SHARED_IPV6 ? [] : bindings, problems };
}

/** The addresses an edge binds for these bindings, given its shared ones. */
export function bindAddressesOf(bindings: string[], shared: string[]): string[] {
  if (bindings.length === 0) return shared;
  return bindings.flatMap((b) => {
    const family = sharedMarkerFamily(b);
    if (family === null) return [b];
    return shared.filter((s) => (s.includes(':') ? 'ipv6' : 'ipv4') === family);
  });
}

/** E_IP_NOT_ALLOCATED: the manifest asks for a dedicated address the app does not have. */
export function notAllocated(app: string, problems: BindingProblem[], newApp: boolean): PierError {
  const families = [...new Set(problems.map((p) => p.family))];
  const commands = families.map((f) => `\`pier ips allocate --app ${app} ${f === 'ipv4' ? '--v4' : '--v6'}\``).join(' and ');
  const list = problems.map((p) => `:${p.port} ${p.family} = "dedicated"`).join(', ');
  return new PierError('E_IP_NOT_ALLOCATED', `the manifest asks for a dedicated address ${app} does not have (${list})`, {
    status: 422,
    hint: newApp
      ? `${app} is new: deploy it once without "dedicated" (e.g. ${families[0]} = "auto"), run ${commands}, then deploy this manifest`
      : `run ${commands}, then deploy again`,
    details: { problems },
  });
}
