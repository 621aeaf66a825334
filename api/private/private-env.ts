// What an instance on a private network is told in its environment: that IPv6 is the family to
// use there, and the names its group answers to. Pier cannot order a client's getaddrinfo answers
// (that is the client's libc and its gai.conf): glibc puts the ULA (AAAA) answer first by default,
// musl and Go put IPv4 first. So apps are told, and the guide says how to resolve AAAA first.
import type { Manifest } from '../manifest.js';
import { privateNames, privateOffer } from './private-spec.js';

export function privateEnv(manifest: Manifest, app: string, process: string): Record<string, string> {
  const env: Record<string, string> = { PIER_PRIVATE_FAMILY: 'ipv6' };
  if (privateOffer(manifest, process)) env.PIER_PRIVATE_NAMES = privateNames(app, process).join(' ');
  return env;
}
