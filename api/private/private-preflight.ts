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
  const ours = await runtime.listNetworks({ [PRIVATE_LABELS.private]: 'true' });
  const clashes = privateClashes(prefixes, routes ?? (await readHostRoutes()), new Set(ours.map((n) => bridgeName(n.id))));
  if (clashes.length) throw prefixClashError(prefixes, clashes);
}
