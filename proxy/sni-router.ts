// Picks one of the TLS passthrough endpoints sharing a listener by the ClientHello's server name:
// their `sni` names (exact or `*.` wildcard), else the one marked `sniDefault`, else none (close).
// An endpoint alone on its port with no names acts as the default.

import { createSniMatcher, type SniMatcher } from './sni-matcher.js';
import type { Route } from './route-table.js';

export interface SniRouter {
  /** The route for `serverName` (null when the hello had none), or undefined: close the connection. */
  route(serverName: string | null): Route | undefined;
}

/** Throws on bad or duplicated names (validateEdgeConfig reports them first, as sentences). */
export function createSniRouter(routes: readonly Route[]): SniRouter {
  const named = routes.filter((r) => (r.endpoint.sni ?? []).length > 0);
  const fallback =
    routes.find((r) => r.endpoint.sniDefault === true) ??
    (routes.length === 1 && named.length === 0 ? routes[0] : undefined);
  const matcher: SniMatcher<Route> = createSniMatcher(
    named.map((r) => ({ names: [...(r.endpoint.sni ?? [])], target: r })),
    fallback,
  );
  return { route: (serverName) => matcher.match(serverName) };
}
