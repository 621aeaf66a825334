// Whether the API serves HTTP or HTTPS, and with which certificate. Loopback (127.0.0.0/8, ::1,
// localhost) stays plain HTTP unless a certificate is given; any other address serves HTTPS only,
// from the operator's certificate or from a self-signed one made on first start and kept in the
// data folder (`<data dir>/api-tls/`, key mode 0600), so its fingerprint, which clients pin,
// stays the same across restarts. Plain HTTP off loopback is refused unless explicitly asked for.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import ipaddr from 'ipaddr.js';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { PierError } from '../pier-error.js';
import { certificateFingerprint } from './certificate-fingerprint.js';
import { createSelfSignedCertificate } from './self-signed-certificate.js';

export interface ApiTlsSetting {
  /** --api-tls: auto (HTTPS off loopback, HTTP on it) or off (plain HTTP: loopback only). */
  mode: 'auto' | 'off';
  /** PEM files the operator gave (--api-tls-cert, --api-tls-key); both or neither. */
  certFile: string | undefined;
  keyFile: string | undefined;
}

export const DEFAULT_API_TLS: ApiTlsSetting = { mode: 'auto', certFile: undefined, keyFile: undefined };

export type ApiTls =
  | { kind: 'http' }
  | { kind: 'https'; cert: string; key: string; fingerprint: string; source: 'given' | 'self-signed'; created: boolean; certFile: string };

/** True for addresses only this host can reach: 127.0.0.0/8, ::1, ::ffff:127.x.y.z and localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').replace(/%.*$/, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (!ipaddr.isValid(h)) return false;
  let address = ipaddr.parse(h);
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) address = (address as ipaddr.IPv6).toIPv4Address();
  return address.range() === 'loopback';
}

/** Decides how the API listening on `host` serves; makes or reuses the self-signed pair when needed. */
export async function resolveApiTls(host: string, setting: ApiTlsSetting, dataDir: string): Promise<ApiTls> {
  const loopback = isLoopbackHost(host);
  if (setting.mode === 'off') {
    if (setting.certFile !== undefined || setting.keyFile !== undefined) {
      throw new PierError('E_CONFIG_INVALID', '--api-tls off was given with a certificate', { status: 400, hint: 'drop --api-tls off to serve HTTPS with it, or drop --api-tls-cert/--api-tls-key' });
    }
    if (!loopback) throw plainHttpRefused(host);
    return { kind: 'http' };
  }
  if (setting.certFile !== undefined || setting.keyFile !== undefined) return given(setting);
  if (loopback) return { kind: 'http' };
  return selfSigned(host, join(dataDir, 'api-tls'));
}

/**
 * Off loopback, bearer tokens would cross the network in clear text. There is no opt-out: a proxy
 * on this host reaches the API on loopback, and one elsewhere can pin the certificate.
 */
export function plainHttpRefused(host: string): PierError {
  return new PierError('E_API_TLS_REQUIRED', `the API would listen on ${host} over plain HTTP, which any host on that network could read tokens from`, {
    status: 400,
    hint: 'drop --api-tls off (Pier then serves HTTPS with a self-signed certificate, or the one --api-tls-cert/--api-tls-key name), or listen on loopback (--api-listen 127.0.0.1:7700)',
  });
}

async function given(setting: ApiTlsSetting): Promise<ApiTls> {
  if (setting.certFile === undefined || setting.keyFile === undefined) {
    throw new PierError('E_API_TLS_INVALID', 'an API certificate needs both a certificate file and a key file', {
      status: 400,
      hint: 'pass --api-tls-cert FILE and --api-tls-key FILE together (env PIER_API_TLS_CERT, PIER_API_TLS_KEY)',
    });
  }
  const [cert, key] = await Promise.all([readPem(setting.certFile, 'certificate'), readPem(setting.keyFile, 'key')]);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
    if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
  } catch (err) {
    throw new PierError('E_API_TLS_INVALID', `cannot use ${setting.certFile} with ${setting.keyFile}: ${(err as Error).message}`, {
      status: 400,
      hint: 'give a PEM certificate (its chain may follow it) and the PEM private key it was issued for',
      cause: err,
    });
  }
  return { kind: 'https', cert, key, fingerprint: certificateFingerprint(x509), source: 'given', created: false, certFile: setting.certFile };
}

async function readPem(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new PierError('E_API_TLS_INVALID', `cannot read the API ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      status: 400,
      hint: `check the path and that the user running pier server can read it`,
      cause: err,
    });
  }
}

/** Reuses `<dir>/cert.pem` and `key.pem`, or makes them (the key 0600, written before the certificate). */
async function selfSigned(host: string, dir: string): Promise<ApiTls> {
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  // Only missing files are made anew: any other read error (permissions) stops the start, since
  // a new certificate would change the fingerprint every client pinned.
  const existing = await Promise.all([readFile(certFile, 'utf8'), readFile(keyFile, 'utf8')]).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw new PierError('E_API_TLS_INVALID', `cannot read the API's certificate in ${dir}: ${err.code ?? err.message}`, {
      hint: 'give the server read access to the folder (its fingerprint is what clients pinned), or remove it to make a new certificate',
    });
  });
  if (existing) {
    const [cert, key] = existing;
    try {
      const x509 = new X509Certificate(cert);
      if (x509.checkPrivateKey(createPrivateKey(key))) return { kind: 'https', cert, key, fingerprint: certificateFingerprint(x509), source: 'self-signed', created: false, certFile };
    } catch {
      // Unreadable: made again below (clients then pin the new fingerprint).
    }
  }
  const { certPem, keyPem } = createSelfSignedCertificate(certificateNames(host));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writePrivate(keyFile, keyPem);
  await writePrivate(certFile, certPem);
  return { kind: 'https', cert: certPem, key: keyPem, fingerprint: certificateFingerprint(certPem), source: 'self-signed', created: true, certFile };
}

/** The listen address (or, for a wildcard, this host's addresses), the host name and localhost. */
export function certificateNames(host: string): string[] {
  const h = host.replace(/^\[|\]$/g, '');
  const wildcard = h === '0.0.0.0' || h === '::';
  const addresses = wildcard ? Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address.replace(/%.*$/, ''))) : [h];
  return [...addresses, hostname(), 'localhost', '127.0.0.1', '::1'];
}

async function writePrivate(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}
