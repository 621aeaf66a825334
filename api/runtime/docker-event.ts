// Maps Docker's /events documents onto RuntimeEvents: the action becomes the type, the actor's
// attributes split into the container's labels and the few fields Docker adds (exitCode, signal).

import type { RuntimeEvent, RuntimeEventType } from './runtime.js';

/** The container actions Pier subscribes to. */
export const DOCKER_EVENT_TYPES: readonly RuntimeEventType[] = ['create', 'start', 'die', 'oom', 'kill', 'stop', 'destroy'];

/** Event attributes Docker adds next to the container's labels. */
const EVENT_ATTRIBUTES = new Set(['image', 'name', 'exitCode', 'signal', 'execDuration']);

interface DockerEventMessage {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  timeNano?: number;
}

/** Maps one document of Docker's /events stream; null for anything that is not a container event Pier watches. */
export function parseDockerEvent(message: unknown): RuntimeEvent | null {
  const m = message as DockerEventMessage;
  const type = DOCKER_EVENT_TYPES.find((t) => t === m.Action);
  const containerId = m.Actor?.ID;
  if (m.Type !== 'container' || type === undefined || !containerId) return null;
  const attributes = m.Actor?.Attributes ?? {};
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(attributes)) if (!EVENT_ATTRIBUTES.has(k)) labels[k] = v;
  const exitCode = type === 'die' && attributes.exitCode !== undefined ? Number(attributes.exitCode) : null;
  return {
    type,
    containerId,
    labels,
    exitCode: exitCode !== null && Number.isInteger(exitCode) ? exitCode : null,
    signal: type === 'kill' ? (attributes.signal ?? null) : null,
    time: new Date(m.timeNano !== undefined ? m.timeNano / 1e6 : (m.time ?? 0) * 1000),
  };
}
