// Picks a route by TLS server name: exact names first, then `*.suffix` wildcards covering exactly
// one label, then the fallback. Patterns are validated once, at construction; match() is two map lookups.

export interface SniRoute<T> {
  /** Exact host names (`a.example.com`) or one-label wildcards (`*.example.com`), any case. */
  names: string[];
  target: T;
}

export interface SniMatcher<T> {
  /** The target for `serverName` (any case); null or no match gives the fallback. */
  match(serverName: string | null): T | undefined;
}

const LABEL = /^[a-z0-9-]{1,63}$/;
const MAX_NAME = 253;

/** Throws an Error naming the offending pattern and route on a bad pattern or a name claimed twice. */
export function createSniMatcher<T>(routes: readonly SniRoute<T>[], fallback?: T): SniMatcher<T> {
  const exact = new Map<string, { target: T; route: number }>();
  // Keyed by the suffix after `*.`, so a lookup strips the first label of the name.
  const wildcard = new Map<string, { target: T; route: number }>();

  routes.forEach((route, index) => {
    if (route.names.length === 0) throw new Error(`sni route ${index} has no names`);
    for (const raw of route.names) {
      const pattern = raw.toLowerCase();
      const isWildcard = pattern.startsWith('*.');
      const name = isWildcard ? pattern.slice(2) : pattern;
      if (!isValidName(name)) {
        throw new Error(
          `sni route ${index}: invalid name pattern "${raw}"; use a host name (a.example.com) or "*." followed by one (*.example.com)`,
        );
      }
      const table = isWildcard ? wildcard : exact;
      const owner = table.get(name);
      if (owner !== undefined && owner.route !== index) {
        throw new Error(`sni name "${pattern}" is claimed by routes ${owner.route} and ${index}; give it to one route only`);
      }
      table.set(name, { target: route.target, route: index });
    }
  });

  return {
    match(serverName) {
      if (serverName === null) return fallback;
      const name = serverName.toLowerCase();
      const hit = exact.get(name);
      if (hit !== undefined) return hit.target;
      const dot = name.indexOf('.');
      // dot > 0: the wildcard's label must be non-empty.
      if (dot > 0 && wildcard.size > 0) {
        const covered = wildcard.get(name.slice(dot + 1));
        if (covered !== undefined) return covered.target;
      }
      return fallback;
    },
  };
}

function isValidName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME) return false;
  return name.split('.').every((label) => LABEL.test(label));
}
