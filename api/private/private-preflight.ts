// At start: the private prefixes must not overlap a route or address of the host, or traffic to
// a private address could leave by another interface (or a LAN's hosts become unreachable from
// containers). Routes on Pier's private bridges (this installation's or another's on the same
// engine) are inside the prefixes by design and do not count. A clash stops the start with
// E_PRIVATE_PREFIX_CLASH, the routes in the way, and flags that fix it.
import type { Runtime } from '../runtime/runtime.js';
import { bridgeName, prefixClashError, privateClashes, readHostRoutes, type HostRoute } from './host-routes.js';
import { PRIVATE_LABELS } from './private-network-key.js';
import type { PrivatePrefixes } from './private-prefixes.js';

export async function checkPrivatePrefixes(runtime: Runtime, prefixes: PrivatePrefixes, routes?: HostRoute[]): Promise<void> {
  // Listed before and after the routes are read: a private bridge another Pier on this engine makes
  // or removes meanwhile is then known either way, and never mistaken for a clash.
  const label = { [PRIVATE_LABELS.private]: 'true' };
  const before = await runtime.listNetworks(label);
  const read = routes ?? (await readHostRoutes());
  const after = await runtime.listNetworks(label);
  const clashes = privateClashes(prefixes, read, new Set([...before, ...after].map((n) => bridgeName(n.id))));
  if (clashes.length) throw prefixClashError(prefixes, clashes);
}
