// A registry Pier does not run: named by URL (--registry, PIER_REGISTRY), with basic-auth
// credentials when it wants them (registry-credentials.ts). Pier pushes to it and the engine pulls
// from it; whether it serves is learnt from the push itself.
import type { Registry, RegistryCredentials } from './registry.js';

export function createExternalRegistry(url: URL, credentials: RegistryCredentials | null = null): Registry {
  return {
    kind: 'external',
    host: url.host,
    url: url.origin,
    credentials,
    ensureServing() {},
    async close() {},
  };
}
