// The server's ACME settings (PIER_ACME_*), read by api/config.ts. Without a directory URL Pier
// obtains no certificates: endpoints with certificates = "acme" wait (their deploys still apply).
import { readFileSync } from 'node:fs';
import { parseDuration } from '../manifest.js';
import { PierError } from '../pier-error.js';

export interface AcmeConfig {
  /** The CA's directory URL (Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory). */
  directoryUrl: string;
  /** Contact for the ACME account (expiry notices). */
  email: string | undefined;
  /** PEM CA bundle the directory's HTTPS certificate is checked against (a private CA, Pebble); undefined: the system's. */
  ca: string | undefined;
  /** Renew this long before a certificate expires (default 30 days). */
  renewBeforeMs: number;
  /** How often the keeper looks for certificates to obtain or renew (default 1 hour). */
  checkEveryMs: number;
  /** After a failure a name waits this long, doubling each time up to a day (default 5 minutes). */
  retryMs: number;
  /** How long an order waits for the edges to confirm its challenge before the CA validates anyway (default 30 s). */
  edgeWaitMs: number;
  /**
   * How long the ACME certificate of a name dropped from every endpoint is kept (unserved) before
   * it is removed; a name that comes back within it reuses it, with no new order (default 7 days).
   */
  keepDroppedMs: number;
}

export function parseAcmeConfig(env: NodeJS.ProcessEnv): AcmeConfig | undefined {
  const directoryUrl = env.PIER_ACME_DIRECTORY;
  if (directoryUrl === undefined || directoryUrl === '') return undefined;
  let url: URL;
  try {
    url = new URL(directoryUrl);
  } catch {
    throw bad('PIER_ACME_DIRECTORY', directoryUrl, 'an https URL, e.g. https://acme-v02.api.letsencrypt.org/directory');
  }
  if (url.protocol !== 'https:') throw bad('PIER_ACME_DIRECTORY', directoryUrl, 'an https URL (ACME runs over HTTPS)');
  let ca: string | undefined;
  if (env.PIER_ACME_CA_FILE) {
    try {
      ca = readFileSync(env.PIER_ACME_CA_FILE, 'utf8');
    } catch (err) {
      throw new PierError('E_CONFIG_INVALID', `PIER_ACME_CA_FILE ${env.PIER_ACME_CA_FILE} cannot be read: ${(err as Error).message}`, { status: 400, hint: 'name a PEM file holding the CA that signed the ACME server\'s HTTPS certificate' });
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw bad('PIER_ACME_CA_FILE', env.PIER_ACME_CA_FILE, 'a PEM file with at least one certificate');
  }
  return {
    directoryUrl,
    email: env.PIER_ACME_EMAIL || undefined,
    ca,
    renewBeforeMs: duration(env, 'PIER_ACME_RENEW_BEFORE', 30 * 86_400_000),
    checkEveryMs: duration(env, 'PIER_ACME_CHECK_EVERY', 3_600_000),
    retryMs: duration(env, 'PIER_ACME_RETRY', 300_000),
    edgeWaitMs: duration(env, 'PIER_ACME_EDGE_WAIT', 30_000),
    keepDroppedMs: duration(env, 'PIER_ACME_KEEP_DROPPED', 7 * 86_400_000),
  };
}

function duration(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const value = env[name];
  if (value === undefined || value === '') return fallback;
  try {
    return parseDuration(value);
  } catch {
    throw bad(name, value, 'a duration such as "500ms", "30s", "5m", "12h" or "30d"');
  }
}

function bad(name: string, value: string, wanted: string): PierError {
  return new PierError('E_CONFIG_INVALID', `${name}=${value} is not usable`, { status: 400, hint: `set it to ${wanted}` });
}
