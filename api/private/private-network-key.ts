// The one place that says which private network an app's instances join. Today it is the app's
// organisation: every app of an org shares one network, and no other org's app is on it. When
// environments exist (issue 17), this returns the app's environment id instead (with the org it
// belongs to): a preview environment then gets a network of its own, and everything else —
// allocation, names, isolation, describe — follows the key unchanged.

export interface PrivateNetworkKey {
  /** What one network is for: an org id now, an environment id later. */
  key: string;
  /** The organisation that owns it (rows cascade with it). */
  orgId: string;
}

export function privateNetworkKey(app: { orgId: string }): PrivateNetworkKey {
  return { key: app.orgId, orgId: app.orgId };
}

/** The Docker network of a key: stable, so a restarted server finds it by name. */
export function privateNetworkName(key: string): string {
  return `pier-private-${key}`;
}

/** Labels on a private network besides dev.pier.managed. */
export const PRIVATE_LABELS = {
  private: 'dev.pier.private',
  key: 'dev.pier.private.key',
} as const;
