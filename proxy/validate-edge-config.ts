// Validation of a whole edge snapshot before anything is bound or swapped: the first problem found
// is returned as a sentence saying what is wrong and where; a valid snapshot returns undefined.

import net from 'node:net';
import type { EdgeConfig } from './edge-config.js';
import { listenerKey, normalizeIp } from './peer-address.js';

const MODES = new Set(['none', 'v1', 'v2']);

/** Checks shape and meaning (ports, IP literals, unique ids, one endpoint per address:port). */
export function validateEdgeConfig(value: unknown): string | undefined {
  if (!isRecord(value)) return 'the snapshot must be an object';
  if (!Number.isSafeInteger(value.version) || (value.version as number) < 0) {
    return 'version must be a non-negative integer';
  }
  if (!Array.isArray(value.endpoints)) return 'endpoints must be an array';

  const endpointIds = new Set<string>();
  const boundBy = new Map<string, string>();
  for (const [index, endpoint] of value.endpoints.entries()) {
    if (!isRecord(endpoint)) return `endpoint #${index} must be an object`;
    if (typeof endpoint.id !== 'string' || endpoint.id === '') return `endpoint #${index} needs a non-empty id`;
    const where = `endpoint "${endpoint.id}"`;
    if (endpointIds.has(endpoint.id)) return `endpoint id "${endpoint.id}" appears twice`;
    endpointIds.add(endpoint.id);
    if (typeof endpoint.app !== 'string') return `${where}: app must be a string`;
    if (typeof endpoint.proxyProtocol !== 'string' || !MODES.has(endpoint.proxyProtocol)) {
      return `${where}: proxyProtocol must be one of none, v1, v2`;
    }

    if (!Array.isArray(endpoint.bind)) return `${where}: bind must be an array`;
    for (const bind of endpoint.bind) {
      const problem = checkAddress(bind, `${where}: bind address`);
      if (problem !== undefined) return problem;
      const { address, port } = bind as { address: string; port: number };
      const key = listenerKey(address, port);
      const other = boundBy.get(key);
      if (other !== undefined) {
        return other === endpoint.id
          ? `${where} binds ${key} twice`
          : `${key} is bound by both endpoint "${other}" and endpoint "${endpoint.id}"`;
      }
      boundBy.set(key, endpoint.id);
    }

    if (!Array.isArray(endpoint.backends)) return `${where}: backends must be an array`;
    const backendIds = new Set<string>();
    for (const backend of endpoint.backends) {
      if (!isRecord(backend) || typeof backend.id !== 'string' || backend.id === '') {
        return `${where}: every backend needs a non-empty id`;
      }
      if (backendIds.has(backend.id)) return `${where}: backend id "${backend.id}" appears twice`;
      backendIds.add(backend.id);
      const problem = checkAddress(backend, `${where}: backend "${backend.id}"`);
      if (problem !== undefined) return problem;
    }
  }
  return undefined;
}

/** Narrowing helper for callers holding unknown input (a state file, a feed). */
export function isValidEdgeConfig(value: unknown): value is EdgeConfig {
  return validateEdgeConfig(value) === undefined;
}

function checkAddress(value: unknown, where: string): string | undefined {
  if (!isRecord(value)) return `${where} must be an object with address and port`;
  const { address, port } = value;
  if (typeof address !== 'string' || net.isIP(address) === 0) {
    return `${where} has address ${JSON.stringify(address)}, which is not an IPv4 or IPv6 literal`;
  }
  if (address.includes(':') && normalizeIp(address) !== address) {
    return `${where} has IPv4-mapped address ${address}: write it as ${normalizeIp(address)}`;
  }
  if (!Number.isInteger(port) || (port as number) < 1 || (port as number) > 65535) {
    return `${where} has port ${JSON.stringify(port)}, which is not in 1-65535`;
  }
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
