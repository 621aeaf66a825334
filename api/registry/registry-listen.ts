// Where Pier's own registry listens (--registry-listen, PIER_REGISTRY_LISTEN): loopback by default,
// which only the API machine reaches; on a swarm, an address the nodes reach, so a release built by
// Pier runs on every node by its `HOST:PORT/…@sha256:…` digest (docs/several-machines.md, "Images").
// The address is also the name images carry, so it must be one address, never a wildcard.
import { BlockList, isIP } from 'node:net';
import { PierError } from '../pier-error.js';

export interface RegistryListen {
  /** An IPv4 or IPv6 address (no brackets), or a host name the nodes resolve. */
  host: string;
  /** 0: a free port, picked once and kept in the registry's folder. */
  port: number;
}

export const LOOPBACK_REGISTRY: RegistryListen = { host: '127.0.0.1', port: 0 };

/** `HOST:PORT`, `[IPV6]:PORT` or `HOST` (a port picked once and kept); undefined when not given. */
export function parseRegistryListen(value: string | undefined): RegistryListen | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const text = value.trim();
  const bad = (why: string) =>
    new PierError('E_CONFIG_INVALID', `registry listen address "${text}" ${why}`, {
      status: 400,
      hint: 'pass --registry-listen HOST:PORT (or PIER_REGISTRY_LISTEN), HOST being one address every node reaches, e.g. 10.0.0.1:5000 or [fd00::1]:5000; port 0 picks one and keeps it',
    });
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6) [host, portText] = [v6[1] as string, v6[2]];
  else if (isIP(text) === 6) host = text;
  else {
    const colon = text.lastIndexOf(':');
    [host, portText] = colon < 0 ? [text, undefined] : [text.slice(0, colon), text.slice(colon + 1)];
  }
  const port = portText === undefined ? 0 : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535 || (portText !== undefined && !/^\d+$/.test(portText))) throw bad('has no valid port (0-65535)');
  if (host === '' || (!isIP(host) && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$/.test(host))) throw bad('names no address or host name');
  if (host === '0.0.0.0' || host === '::') throw bad('is a wildcard: images are named after the address, so it must be one the nodes reach');
  if (isIP(host) && !isPrivateAddress(host)) {
    throw bad('is a public address: Pier\'s own registry has no sign-in and allows deletes, so anyone reaching it could read or delete every app\'s images; listen on a private address of the nodes\' network (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), or put a registry with sign-in and TLS in front and pass --registry https://…');
  }
  return { host, port };
}

const PRIVATE = new BlockList();
for (const [net, bits] of [['127.0.0.0', 8], ['10.0.0.0', 8], ['172.16.0.0', 12], ['192.168.0.0', 16], ['100.64.0.0', 10], ['198.18.0.0', 15], ['169.254.0.0', 16]] as const) PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::1', 128], ['fc00::', 7], ['fe80::', 10]] as const) PRIVATE.addSubnet(net, bits, 'ipv6');

/** Loopback, private, shared (CGNAT), benchmarking and link-local ranges: not reachable from the internet. */
export function isPrivateAddress(host: string): boolean {
  return PRIVATE.check(host, isIP(host) === 6 ? 'ipv6' : 'ipv4');
}

/** `host:port` as image references name it (an IPv6 address in brackets). */
export function registryHostPort(listen: RegistryListen, port: number): string {
  return `${isIP(listen.host) === 6 ? `[${listen.host}]` : listen.host}:${port}`;
}
