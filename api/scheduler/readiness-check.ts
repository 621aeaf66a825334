// The check an instance of a process runs under: the one its manifest declares, or else, for a
// process behind endpoints, Pier's implicit readiness check — a TCP connect to each endpoint's
// target port at the instance's address — so that an instance is routed to (and a rollout
// counts it ready) only once it listens where its endpoints point, and at the ports it offers on
// the private network ([[private]]), whose names it joins only then. Pure.
import type { CheckSpec, Manifest } from '../manifest.js';
import { privatePorts } from '../private/private-spec.js';

/** A TCP connect to every target port of the process's endpoints. */
export interface ListenCheck {
  type: 'listen';
  /** Each target port, with the public ports of the endpoints that forward to it. */
  targets: { port: number; endpoints: number[] }[];
  /** Between rounds once the instance has passed. */
  interval: number;
  /** Between rounds while it starts: short, so a rollout waits for the listen, not for a timer. */
  start_interval: number;
  timeout: number;
  grace: number;
  healthy_threshold: number;
  unhealthy_threshold: number;
  /** Never restarts an instance: a process that stops listening leaves the route table only. */
  restart_threshold: null;
}

export type ProcessCheck = (CheckSpec & { start_interval?: undefined }) | ListenCheck;

/** The implicit check's settings, documented in docs/manifest.md ("Readiness"). */
export const LISTEN_CHECK = {
  interval: 5_000,
  start_interval: 250,
  timeout: 1_000,
  grace: 0,
  healthy_threshold: 1,
  unhealthy_threshold: 3,
  restart_threshold: null,
} as const;

/** The check instances of `process` run under, or null when they have none (ready once running). */
export function effectiveCheck(manifest: Manifest, process: string): ProcessCheck | null {
  const spec = manifest.processes[process];
  if (!spec) return null;
  if (spec.check) return spec.check;
  const byTarget = new Map<number, number[]>();
  for (const e of manifest.endpoints) {
    if (e.process !== process) continue;
    byTarget.set(e.target, [...(byTarget.get(e.target) ?? []), e.port]);
  }
  // Ports offered on the private network count too: its names answer only once they listen.
  // (TCP ones: a UDP port cannot be probed by a connect.)
  for (const port of privatePorts(manifest, process).tcp) byTarget.set(port, byTarget.get(port) ?? []);
  if (byTarget.size === 0) return null;
  const targets = [...byTarget].sort(([a], [b]) => a - b).map(([port, endpoints]) => ({ port, endpoints: endpoints.sort((a, b) => a - b) }));
  return { type: 'listen', targets, ...LISTEN_CHECK };
}
