// The wire protocol between the API server and a node agent (`pier agent`), shared by both ends
// (api/agent/agent-app.ts serves it, api/volumes/drivers/remote-driver.ts speaks it): the paths of
// the VolumeDriver calls, the names volumes, snapshots and staging folders may have, and how a
// streamed answer says at its end whether the tool that made it succeeded (an HTTP trailer).
import { PierError } from '../pier-error.js';

/** Ids and staging names: what Pier makes (`vol_…`, `snap_…`, `move_…-pre`, `import-…`); never a path. */
export const AGENT_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** The trailer a streamed send ends with: `ok`, or the error as base64url JSON ({ code, message, hint }). */
export const STATUS_TRAILER = 'pier-status';

/** What the agent says about itself (GET /v1/root). */
export interface AgentRoot {
  kind: 'dir' | 'btrfs';
  /** The storage root on the agent's node. */
  root: string;
  version: string;
  /**
   * Offered ports enforced in this node's tasks (`pier agent --docker-host`, task-firewall.ts):
   * how many are now, the last failure, and the IPv6 address each task got on its overlay (by
   * container id), and how many tasks' hosts files hold the private names last pushed (null: none
   * pushed yet); null or absent when the agent does not watch its engine.
   */
  offeredPorts?: { enforced: number; problem: string | null; ipv6?: Record<string, string> | undefined; named?: number | null | undefined } | null | undefined;
}

export interface AgentErrorBody {
  error: { code: string; message: string; hint?: string | undefined };
}

export function errorBody(code: string, message: string, hint?: string): AgentErrorBody {
  return { error: { code, message, ...(hint ? { hint } : {}) } };
}

export function encodeStatus(err: { code: string; message: string; hint?: string | undefined } | null): string {
  return err === null ? 'ok' : Buffer.from(JSON.stringify({ code: err.code, message: err.message, hint: err.hint })).toString('base64url');
}

/** The trailer's error, or null for `ok`; undefined when the trailer is missing or unreadable. */
export function decodeStatus(value: string | undefined): AgentErrorBody['error'] | null | undefined {
  if (value === 'ok') return null;
  if (!value) return undefined;
  try {
    const e = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as AgentErrorBody['error'];
    return typeof e.code === 'string' && typeof e.message === 'string' ? e : undefined;
  } catch {
    return undefined;
  }
}

export function checkAgentId(value: string, what: string): string {
  if (!AGENT_ID.test(value)) {
    throw new PierError('E_AGENT_BAD_REQUEST', `${what} "${value.slice(0, 140)}" is not an id (letters, digits, "_" and "-", at most 128)`, {
      status: 400,
      hint: 'ids name a volume, snapshot or staging folder of the root; never a path',
    });
  }
  return value;
}
