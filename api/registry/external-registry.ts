// A registry Pier does not run: named by URL (--registry, PIER_REGISTRY). Pier pushes to it and
// the engine pulls from it; whether it serves is learnt from the push itself.
import type { Registry } from './registry.js';

export function createExternalRegistry(url: URL): Registry {
  return {
    kind: 'external',
    host: url.host,
    ensureServing() {},
    async close() {},
  };
}
