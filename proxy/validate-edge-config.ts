// Checks a whole edge snapshot before anything is bound or swapped, with the one schema that also
// types it (edge-config.ts): the first problem comes back as a sentence saying what is wrong and
// where (`endpoint "shop/443": backend "i-7" has port 0, which is not in 1-65535`).

import { edgeConfigSchema, type EdgeConfig } from './edge-config.js';

export type EdgeConfigCheck = { ok: true; config: EdgeConfig } | { ok: false; problem: string };

/** The snapshot as parsed (unknown fields dropped), or its first problem. */
export function parseEdgeConfig(value: unknown): EdgeConfigCheck {
  const result = edgeConfigSchema.safeParse(value);
  if (result.success) return { ok: true, config: result.data };
  const issue = result.error.issues[0]!;
  return { ok: false, problem: locate(issue.path, issue.message, value) };
}

/** The first problem of `value` as a snapshot, or undefined when it is one. */
export function validateEdgeConfig(value: unknown): string | undefined {
  const check = parseEdgeConfig(value);
  return check.ok ? undefined : check.problem;
}

/** Prefixes a schema message with the endpoint (by id, else by position) and the entry it is about. */
function locate(path: readonly PropertyKey[], message: string, input: unknown): string {
  if (path[0] !== 'endpoints' || typeof path[1] !== 'number') return message;
  const index = path[1];
  const endpoint = field(field(input, 'endpoints'), index);
  const id = field(endpoint, 'id');
  const named = typeof id === 'string' && id !== '';
  // Not an object, or no usable id: the endpoint is named by its position.
  if ((path.length === 2 && !named) || (path[2] === 'id' && path.length === 3)) return `endpoint #${index} ${message}`;
  const where = named ? `endpoint "${id}"` : `endpoint #${index}`;
  const [list, item, leaf] = path.slice(2);
  if (list === 'bind' && typeof item === 'number') return `${where}: bind address ${message}`;
  if (list === 'backends' && typeof item === 'number') {
    const backendId = field(field(field(endpoint, 'backends'), item), 'id');
    if (leaf === undefined || leaf === 'id' || typeof backendId !== 'string' || backendId === '') return `${where}: every backend needs a non-empty id`;
    return `${where}: backend "${backendId}" ${message}`;
  }
  return `${where}: ${message}`;
}

function field(value: unknown, key: string | number): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string | number, unknown>)[key] : undefined;
}
