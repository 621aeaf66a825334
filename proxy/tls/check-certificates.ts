// Part of the snapshot check (edge-config.ts): certificate ids are unique, every tls: terminate
// endpoint names certificates the snapshot carries, and each certificate's key and each client CA
// load into OpenSSL. Returns the first problem as a sentence; a bad snapshot is refused whole.

import tls from 'node:tls';
import type { EdgeConfig } from '../edge-config.js';

export function checkCertificates(config: EdgeConfig): string | undefined {
  const ids = new Set<string>();
  for (const c of config.certificates ?? []) {
    if (ids.has(c.id)) return `certificate id "${c.id}" appears twice`;
    ids.add(c.id);
    try {
      tls.createSecureContext({ cert: c.cert, key: c.key });
    } catch (err) {
      return `certificate "${c.id}" does not load: ${(err as Error).message}`;
    }
  }
  for (const c of config.acmeChallenges ?? []) {
    try {
      tls.createSecureContext({ cert: c.cert, key: c.key });
    } catch (err) {
      return `acme challenge for "${c.name}" does not load: ${(err as Error).message}`;
    }
  }
  for (const e of config.endpoints) {
    if (e.terminate === undefined) continue;
    for (const id of e.terminate.certificates) {
      if (!ids.has(id)) return `endpoint "${e.id}" names certificate "${id}", which the snapshot does not carry`;
    }
    if (e.terminate.clientCa !== undefined) {
      try {
        tls.createSecureContext({ ca: e.terminate.clientCa });
      } catch (err) {
        return `endpoint "${e.id}": terminate.clientCa does not load: ${(err as Error).message}`;
      }
    }
  }
  return undefined;
}
