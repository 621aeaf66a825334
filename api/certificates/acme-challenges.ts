// The tls-alpn-01 challenge certificates (RFC 8737) of orders in progress, kept in the API
// process and sent to every edge in the snapshot of the authenticated edge feed
// (`acmeChallenges`), so whichever edge the CA's validator reaches answers it. A challenge lives
// from just before Pier tells the CA to validate until the order is done.
import type { AcmeChallengeConfig } from '../../proxy/edge-config.js';

export interface AcmeChallenges {
  /** Adds (or replaces) the challenge for `name`; `onChange` is told the app. */
  put(challenge: AcmeChallengeConfig & { appId: string }): void;
  remove(name: string): void;
  /** What the edge snapshot carries, ordered by name. */
  list(): AcmeChallengeConfig[];
}

export function createAcmeChallenges(onChange: (appId: string) => void): AcmeChallenges {
  const byName = new Map<string, AcmeChallengeConfig & { appId: string }>();
  return {
    put(challenge) {
      byName.set(challenge.name, challenge);
      onChange(challenge.appId);
    },
    remove(name) {
      const old = byName.get(name);
      if (old === undefined) return;
      byName.delete(name);
      onChange(old.appId);
    },
    list() {
      return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(({ app, name, cert, key }) => ({ app, name, cert, key }));
    },
  };
}
