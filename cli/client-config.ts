// Where the CLI finds the API and its token: PIER_API_URL / PIER_TOKEN, else the config file
// that `pier login` or `pier server` (on first start) writes ($XDG_CONFIG_HOME/pier/config.json).
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseFingerprint } from '../api/tls/certificate-fingerprint.js';
import { checkToken } from './api-token.js';
import { CliError } from './cli-error.js';
import { EXIT } from './exit-codes.js';

export interface ClientConfig {
  apiUrl: string;
  token: string;
  /** The environment requests act in (`--env`, else PIER_ENV; the server's default is production). */
  environment?: string | undefined;
  /**
   * The SHA-256 fingerprint the API's certificate must have (`pier login --fingerprint`, or
   * PIER_API_FINGERPRINT): pinned instead of CA validation (cli/api-transport.ts).
   */
  fingerprint?: string | undefined;
}

export function configFilePath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'pier', 'config.json');
}

export function loadClientConfig(env: NodeJS.ProcessEnv): ClientConfig {
  const file = configFilePath(env);
  let saved: Partial<ClientConfig> = {};
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<ClientConfig>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CliError('E_CONFIG_INVALID', `cannot read ${file}: ${(err as Error).message}`, { hint: 'fix or delete the file', exitCode: EXIT.error });
    }
  }
  const apiUrl = env.PIER_API_URL || saved.apiUrl || 'http://127.0.0.1:7700';
  const token = env.PIER_TOKEN || saved.token;
  if (!token) {
    throw new CliError('E_UNAUTHENTICATED', 'no API token is configured', {
      hint: `set PIER_TOKEN, or start \`pier server\` on this machine once (it writes ${file})`,
      exitCode: EXIT.auth,
    });
  }
  const url = apiUrl.replace(/\/+$/, '');
  // A stored fingerprint belongs to the stored URL: PIER_API_URL elsewhere does not inherit it.
  const fingerprint = env.PIER_API_FINGERPRINT ? fingerprintFromEnv(env.PIER_API_FINGERPRINT) : saved.apiUrl?.replace(/\/+$/, '') === url ? saved.fingerprint : undefined;
  return {
    apiUrl: url,
    token: checkToken(token, env.PIER_TOKEN ? 'PIER_TOKEN' : file),
    ...(env.PIER_ENV ? { environment: env.PIER_ENV } : {}),
    ...(fingerprint ? { fingerprint } : {}),
  };
}

function fingerprintFromEnv(value: string): string {
  const parsed = parseFingerprint(value);
  if (!parsed) {
    throw new CliError('E_CONFIG_INVALID', `PIER_API_FINGERPRINT "${value}" is not a SHA-256 fingerprint`, {
      hint: 'use the value `pier server` printed: SHA256:… (base64), or 32 hex bytes with colons',
      exitCode: EXIT.usage,
    });
  }
  return parsed;
}

/** Stores the API URL, token and fingerprint (if any) in the config file (mode 0600), keeping its other settings. */
export function saveClientConfig(env: NodeJS.ProcessEnv, config: ClientConfig): string {
  const file = configFilePath(env);
  let current: Record<string, unknown> = {};
  try {
    current = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    // No file yet, or one we replace.
  }
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  // A new URL or certificate replaces the pin: none is kept for a server that does not need it.
  const { fingerprint: _old, ...rest } = current;
  const next = { ...rest, apiUrl: config.apiUrl, token: config.token, ...(config.fingerprint ? { fingerprint: config.fingerprint } : {}) };
  writeFileSync(tmp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
  return file;
}
