// What each endpoint of the served snapshot is doing: `serving` when every listener of it is bound,
// `failed` when one could not bind (with the system error and when it is retried next). The shape
// is part of the edge's report to the API (EDGE-REPORT.md); a cluster primary merges its workers'
// states with mergeEndpointStates (failed in any worker = failed).

import type { ListenerSet } from './listener-set.js';
import { listenerKey } from './peer-address.js';
import type { RouteTable } from './route-table.js';

export interface EndpointListenerState {
  address: string;
  port: number;
  state: 'bound' | 'failed';
  error?: { code: string; message: string };
  /** ISO time of the next bind attempt. */
  retryAt?: string;
}

export interface EndpointState {
  id: string;
  /** The snapshot's label for the endpoint, when it has one. */
  name?: string;
  /** Echoed from the snapshot (null when it has none), so the API knows which settings this is about. */
  revision: number | null;
  state: 'serving' | 'failed';
  listeners: EndpointListenerState[];
}

export function endpointStates(table: RouteTable, listeners: ListenerSet): EndpointState[] {
  const config = table.config;
  if (config === null) return [];
  return config.endpoints.map((endpoint) => {
    const binds = endpoint.bind.map((bind): EndpointListenerState => {
      const key = listenerKey(bind.address, bind.port);
      const spec = table.listeners.get(key);
      const state = listeners.state(key);
      const address = spec?.address ?? bind.address;
      if (state.state === 'bound') return { address, port: bind.port, state: 'bound' };
      return { address, port: bind.port, state: 'failed', error: { ...state.error }, retryAt: new Date(state.retryAt).toISOString() };
    });
    return {
      id: endpoint.id,
      ...(endpoint.name === undefined ? {} : { name: endpoint.name }),
      revision: endpoint.revision ?? null,
      state: binds.every((l) => l.state === 'bound') ? 'serving' : 'failed',
      listeners: binds,
    };
  });
}

/** One state per endpoint over several processes: a listener failed in any of them is failed. */
export function mergeEndpointStates(perProcess: readonly EndpointState[][]): EndpointState[] {
  const merged = new Map<string, EndpointState>();
  for (const states of perProcess) {
    for (const state of states) {
      const seen = merged.get(state.id);
      if (seen === undefined) {
        merged.set(state.id, { ...state, listeners: state.listeners.map((l) => ({ ...l })) });
        continue;
      }
      // Processes mid-way between two snapshots: the older settings are what is surely served.
      if (state.revision !== seen.revision) seen.revision = state.revision === null || seen.revision === null ? null : Math.min(state.revision, seen.revision);
      for (const listener of state.listeners) {
        const i = seen.listeners.findIndex((l) => l.address === listener.address && l.port === listener.port);
        if (i < 0) seen.listeners.push({ ...listener });
        else if (listener.state === 'failed' && seen.listeners[i]!.state === 'bound') seen.listeners[i] = { ...listener };
      }
      if (state.state === 'failed' || seen.listeners.some((l) => l.state === 'failed')) seen.state = 'failed';
    }
  }
  return [...merged.values()];
}
