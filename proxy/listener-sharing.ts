// Who may share an address:port: one plain endpoint alone, or TLS passthrough endpoints that agree
// on PROXY-in and split the server names between them (at most one default). Part of the snapshot
// check (edge-config.ts); returns the first problem as a sentence.

import type { EndpointConfig } from './edge-config.js';
import { listenerKey } from './peer-address.js';
import { createSniMatcher } from './sni-matcher.js';

export function checkSharedListeners(endpoints: readonly EndpointConfig[]): string | undefined {
  const boundBy = new Map<string, EndpointConfig[]>();
  for (const endpoint of endpoints) {
    for (const bind of endpoint.bind) {
      const key = listenerKey(bind.address, bind.port);
      const sharing = boundBy.get(key);
      if (sharing === undefined) boundBy.set(key, [endpoint]);
      else if (!sharing.includes(endpoint)) sharing.push(endpoint);
    }
  }
  for (const [key, sharing] of boundBy) {
    const problem = checkListener(key, sharing);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function checkListener(key: string, sharing: EndpointConfig[]): string | undefined {
  const ids = sharing.map((e) => `"${e.id}"`).join(', ');
  if (sharing.length > 1) {
    if (sharing.some((e) => e.tls !== 'passthrough')) {
      const which = sharing.length === 2 ? `both endpoint "${sharing[0]!.id}" and endpoint "${sharing[1]!.id}"` : `endpoints ${ids}`;
      return `${key} is bound by ${which}; only tls passthrough endpoints with distinct sni names may share an address:port`;
    }
    const trusted = sharing.map((e) => JSON.stringify(e.acceptProxyProtocol?.trustedCidrs ?? null));
    if (new Set(trusted).size > 1) return `${key} is shared by endpoints ${ids} that disagree on acceptProxyProtocol`;
    const unnamed = sharing.find((e) => (e.sni ?? []).length === 0 && e.sniDefault !== true);
    if (unnamed !== undefined) return `${key} is shared: endpoint "${unnamed.id}" needs sni names or sniDefault: true`;
  }
  if (sharing[0]?.tls !== 'passthrough') return undefined;
  const defaults = sharing.filter((e) => e.sniDefault === true);
  if (defaults.length > 1) return `${key}: only one endpoint may be sniDefault, not ${defaults.map((e) => `"${e.id}"`).join(', ')}`;
  const owner = new Map<string, string>();
  for (const e of sharing) {
    const names = e.sni ?? [];
    if (names.length === 0) continue;
    try {
      createSniMatcher([{ names, target: e.id }]);
    } catch (err) {
      return `endpoint "${e.id}": ${(err as Error).message.replace(/^sni route 0: /, '')}`;
    }
    for (const name of names) {
      const other = owner.get(name.toLowerCase());
      if (other !== undefined && other !== e.id) {
        return `${key}: sni name "${name.toLowerCase()}" is claimed by both endpoint "${other}" and endpoint "${e.id}"`;
      }
      owner.set(name.toLowerCase(), e.id);
    }
  }
  return undefined;
}
