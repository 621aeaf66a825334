// Validation of a whole edge snapshot before anything is bound or swapped: the first problem found
// is returned as a sentence saying what is wrong and where; a valid snapshot returns undefined.

import net from 'node:net';
import { parseCidr } from './cidr-list.js';
import type { EdgeConfig } from './edge-config.js';
import { listenerKey, normalizeIp } from './peer-address.js';
import { createSniMatcher } from './sni-matcher.js';

const MODES = new Set(['none', 'v1', 'v2']);
const TLVS = new Set(['authority', 'unique-id', 'crc32c']);

/**
 * Checks shape and meaning (ports, IP literals, unique ids, CIDRs, limits). An address:port belongs
 * to one endpoint, except that TLS passthrough endpoints with distinct SNI names may share one.
 */
export function validateEdgeConfig(value: unknown): string | undefined {
  if (!isRecord(value)) return 'the snapshot must be an object';
  if (!Number.isSafeInteger(value.version) || (value.version as number) < 0) {
    return 'version must be a non-negative integer';
  }
  if (!Array.isArray(value.endpoints)) return 'endpoints must be an array';

  const endpointIds = new Set<string>();
  const boundBy = new Map<string, Record<string, unknown>[]>();
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
    const optionProblem = checkOptions(endpoint, where);
    if (optionProblem !== undefined) return optionProblem;

    if (!Array.isArray(endpoint.bind)) return `${where}: bind must be an array`;
    for (const bind of endpoint.bind) {
      const problem = checkAddress(bind, `${where}: bind address`);
      if (problem !== undefined) return problem;
      const { address, port } = bind as { address: string; port: number };
      const key = listenerKey(address, port);
      const others = boundBy.get(key);
      if (others === undefined) boundBy.set(key, [endpoint]);
      else if (others.includes(endpoint)) return `${where} binds ${key} twice`;
      else others.push(endpoint);
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
  for (const [key, sharing] of boundBy) {
    const problem = checkListener(key, sharing);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

/** The optional fields of one endpoint (edge-config.ts). */
function checkOptions(endpoint: Record<string, unknown>, where: string): string | undefined {
  const { proxyProtocolTlvs: tlvs, acceptProxyProtocol: accept, tls, sni, sniDefault } = endpoint;
  if (tlvs !== undefined) {
    if (!Array.isArray(tlvs) || tlvs.some((t) => !TLVS.has(t as string))) {
      return `${where}: proxyProtocolTlvs must be a list of authority, unique-id, crc32c`;
    }
    if (tlvs.length > 0 && endpoint.proxyProtocol !== 'v2') return `${where}: proxyProtocolTlvs needs proxyProtocol v2`;
  }
  if (accept !== undefined) {
    if (!isRecord(accept) || !Array.isArray(accept.trustedCidrs) || accept.trustedCidrs.length === 0) {
      return `${where}: acceptProxyProtocol needs a non-empty trustedCidrs list`;
    }
    const problem = checkCidrs(accept.trustedCidrs, `${where}: acceptProxyProtocol.trustedCidrs`);
    if (problem !== undefined) return problem;
  }
  for (const field of ['allow', 'deny'] as const) {
    const list = endpoint[field];
    if (list === undefined) continue;
    if (!Array.isArray(list)) return `${where}: ${field} must be a list of CIDRs`;
    const problem = checkCidrs(list, `${where}: ${field}`);
    if (problem !== undefined) return problem;
  }
  for (const field of ['maxConnections', 'maxConnectionsPerClient', 'idleTimeoutMs'] as const) {
    const value = endpoint[field];
    if (value !== undefined && (!Number.isSafeInteger(value) || (value as number) < 1)) {
      return `${where}: ${field} must be a positive integer, got ${JSON.stringify(value)}`;
    }
  }
  if (tls !== undefined && tls !== 'none' && tls !== 'passthrough') return `${where}: tls must be none or passthrough`;
  if (tls !== 'passthrough' && (sni !== undefined || sniDefault !== undefined)) {
    return `${where}: sni and sniDefault need tls: passthrough`;
  }
  if (sni !== undefined && (!Array.isArray(sni) || sni.some((name) => typeof name !== 'string'))) {
    return `${where}: sni must be a list of host names`;
  }
  if (sniDefault !== undefined && typeof sniDefault !== 'boolean') return `${where}: sniDefault must be true or false`;
  return undefined;
}

function checkCidrs(list: unknown[], where: string): string | undefined {
  for (const entry of list) {
    const range = parseCidr(entry);
    if (typeof range === 'string') return `${where}: ${range}`;
  }
  return undefined;
}

/** One address:port: a plain endpoint alone, or passthrough endpoints with distinct names. */
function checkListener(key: string, sharing: Record<string, unknown>[]): string | undefined {
  const ids = sharing.map((e) => `"${e.id as string}"`).join(', ');
  if (sharing.length > 1) {
    if (sharing.some((e) => e.tls !== 'passthrough')) {
      const which = sharing.length === 2 ? `both endpoint "${sharing[0]!.id as string}" and endpoint "${sharing[1]!.id as string}"` : `endpoints ${ids}`;
      return `${key} is bound by ${which}; only tls passthrough endpoints with distinct sni names may share an address:port`;
    }
    const trusted = sharing.map((e) => JSON.stringify((e.acceptProxyProtocol as { trustedCidrs?: unknown } | undefined)?.trustedCidrs ?? null));
    if (new Set(trusted).size > 1) return `${key} is shared by endpoints ${ids} that disagree on acceptProxyProtocol`;
    const unnamed = sharing.find((e) => ((e.sni as unknown[] | undefined) ?? []).length === 0 && e.sniDefault !== true);
    if (unnamed !== undefined) return `${key} is shared: endpoint "${unnamed.id as string}" needs sni names or sniDefault: true`;
  }
  if (sharing[0]?.tls !== 'passthrough') return undefined;
  const defaults = sharing.filter((e) => e.sniDefault === true);
  if (defaults.length > 1) return `${key}: only one endpoint may be sniDefault, not ${defaults.map((e) => `"${e.id as string}"`).join(', ')}`;
  const owner = new Map<string, string>();
  for (const e of sharing) {
    const names = (e.sni as string[] | undefined) ?? [];
    if (names.length === 0) continue;
    try {
      createSniMatcher([{ names, target: e.id }]);
    } catch (err) {
      return `endpoint "${e.id as string}": ${(err as Error).message.replace(/^sni route 0: /, '')}`;
    }
    for (const name of names) {
      const other = owner.get(name.toLowerCase());
      if (other !== undefined && other !== e.id) {
        return `${key}: sni name "${name.toLowerCase()}" is claimed by both endpoint "${other}" and endpoint "${e.id as string}"`;
      }
      owner.set(name.toLowerCase(), e.id as string);
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
