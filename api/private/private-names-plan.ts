// What to do about one instance's place on its private network, given what it should answer to
// and what the engine says. Docker sets a container's aliases only when it joins a network, so a
// change of names is a leave and a join again, keeping its addresses (clients that know them
// keep working; only the names change). Pure.
import type { NetworkEndpoint } from '../runtime/runtime.js';
import { privateNames } from './private-spec.js';

export interface NameFacts {
  app: string;
  process: string;
  /** The instance should run (not scaled away, not replaced). */
  desired: 'running' | 'stopped';
  /** It is draining: out of the route table, about to stop. */
  draining: boolean;
  health: 'none' | 'starting' | 'healthy' | 'unhealthy';
  /** Its process group has a [[private]] entry in the instance's release. */
  offered: boolean;
}

export type NameAction = { type: 'none' } | { type: 'join'; aliases: string[] } | { type: 'rejoin'; aliases: string[]; ipv4: string | null; ipv6: string | null };

/** The names an instance answers to now: those of its group and app while it is ready, else none. */
export function wantedNames(f: NameFacts): string[] {
  const ready = f.desired === 'running' && !f.draining && (f.health === 'none' || f.health === 'healthy');
  return ready && f.offered ? privateNames(f.app, f.process) : [];
}

export function planName(f: NameFacts, endpoint: NetworkEndpoint | undefined): NameAction {
  const aliases = wantedNames(f);
  if (!endpoint) return { type: 'join', aliases };
  const have = [...endpoint.aliases].sort().join(',');
  if (have === [...aliases].sort().join(',')) return { type: 'none' };
  return { type: 'rejoin', aliases, ipv4: endpoint.ipv4, ipv6: endpoint.ipv6 };
}
