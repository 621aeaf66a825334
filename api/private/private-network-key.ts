// The one place that says which private network an app's instances join: one per environment.
// Production's network is keyed by the organisation alone (what it was before environments
// existed, so a server upgraded in place keeps its network and addresses); every other
// environment (staging, a preview) gets a network of its own, so its apps neither answer nor
// reach production's names. Allocation, names, isolation and describe follow the key unchanged.

export interface PrivateNetworkKey {
  /** What one network is for: the org id (production), or `ORG.ENVIRONMENT`. */
  key: string;
  /** The organisation that owns it (rows cascade with it). */
  orgId: string;
}

export function privateNetworkKey(app: { orgId: string; environment?: string | undefined }): PrivateNetworkKey {
  const environment = app.environment ?? 'production';
  return { key: environment === 'production' ? app.orgId : `${app.orgId}.${environment}`, orgId: app.orgId };
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
