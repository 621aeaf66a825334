// The server's settings for environments: the ports previews get on the shared addresses
// (PIER_PREVIEW_PORTS, "20000-29999") and how often the reaper looks for expired previews
// (PIER_REAP_INTERVAL, "60s"). Read once by loadConfig, also in the `pier server` supervisor: this
// file stays free of the database layer (drizzle-orm), which that process never loads.
import { parseDuration } from './manifest.js';
import { PierError } from './pier-error.js';

export interface PortRange {
  from: number;
  to: number;
}

/** The preview range when the server sets none (PIER_PREVIEW_PORTS). */
export const DEFAULT_PREVIEW_PORTS: PortRange = { from: 20000, to: 29999 };

export interface EnvironmentConfig {
  previewPorts: PortRange;
  reapIntervalMs: number;
}

export function parseEnvironmentConfig(env: NodeJS.ProcessEnv): EnvironmentConfig {
  return { previewPorts: parseRange(env.PIER_PREVIEW_PORTS), reapIntervalMs: parseInterval(env.PIER_REAP_INTERVAL) };
}

function parseRange(value: string | undefined): PortRange {
  if (value === undefined || value === '') return DEFAULT_PREVIEW_PORTS;
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(value.trim());
  const from = Number(m?.[1]), to = Number(m?.[2]);
  if (!m || from < 1 || to > 65535 || from > to) {
    throw new PierError('E_CONFIG_INVALID', `PIER_PREVIEW_PORTS must be a port range such as 20000-29999, not "${value}"`, { status: 400, hint: 'set it to FROM-TO with 1 <= FROM <= TO <= 65535' });
  }
  return { from, to };
}

function parseInterval(value: string | undefined): number {
  if (value === undefined || value === '') return 60_000;
  try {
    const ms = parseDuration(value.trim());
    if (ms >= 1_000) return ms;
  } catch {
    // Reported below.
  }
  throw new PierError('E_CONFIG_INVALID', `PIER_REAP_INTERVAL must be a duration of at least 1s such as "60s", not "${value}"`, { status: 400, hint: 'e.g. PIER_REAP_INTERVAL=60s' });
}
