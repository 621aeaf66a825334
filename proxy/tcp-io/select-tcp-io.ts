// Picks the edge's TCP I/O at start. `handle` (Node's internal tcp_wrap, faster) when Node lets
// us use it, `socket` (net.Socket, public API) otherwise, or whichever the operator forces. The
// handle module is imported only once chosen: under `node --permission` merely reading
// process.binding throws ERR_ACCESS_DENIED, and with --pending-deprecation it warns DEP0111.

import type { Logger } from 'pino';
import type { TcpIo, TcpIoMode } from './tcp-io.js';

export type TcpIoChoice = TcpIoMode | 'auto';

export const TCP_IO_CHOICES: readonly TcpIoChoice[] = ['auto', 'handle', 'socket'];

/** What decides whether the internal bindings are usable, read from the running Node. */
export interface NodeFacts {
  /** `process.binding` exists (it may disappear in a future Node). */
  hasBinding: boolean;
  /** Node runs with the permission model (`--permission`, `--experimental-permission`). */
  permissionModel: boolean;
  /** Pending deprecations are reported (`--pending-deprecation`, NODE_PENDING_DEPRECATION=1). */
  pendingDeprecation: boolean;
}

export type TcpIoDecision = { mode: TcpIoMode; reason: string } | { error: string };

export interface SelectedTcpIo {
  io: TcpIo;
  /** Why this mode: one short sentence for the start-up log line. */
  reason: string;
}

/** Reads the facts from this process: Node's own switches, not Pier's configuration. */
export function currentNodeFacts(): NodeFacts {
  const proc = process as unknown as { binding?: unknown; permission?: unknown };
  const nodeOptions = process.env.NODE_OPTIONS ?? '';
  return {
    hasBinding: typeof proc.binding === 'function',
    permissionModel: proc.permission !== undefined,
    pendingDeprecation:
      process.execArgv.includes('--pending-deprecation') || /(^|\s)--pending-deprecation(\s|$)/.test(nodeOptions) || process.env.NODE_PENDING_DEPRECATION === '1',
  };
}

/** Why the internal bindings cannot be used here, or null when they can. */
export function handleUnusableBecause(facts: NodeFacts): string | null {
  if (!facts.hasBinding) return 'this Node has no process.binding()';
  if (facts.permissionModel) return "Node's permission model denies process.binding()";
  if (facts.pendingDeprecation) return 'process.binding() would warn DEP0111 under --pending-deprecation';
  return null;
}

/** The pure decision (before the handle module is tried). */
export function decideTcpIo(choice: TcpIoChoice, facts: NodeFacts): TcpIoDecision {
  const unusable = handleUnusableBecause(facts);
  if (choice === 'socket') return { mode: 'socket', reason: 'asked for' };
  if (choice === 'handle') {
    return unusable === null ? { mode: 'handle', reason: 'asked for' } : { error: `handle i/o cannot run here: ${unusable}` };
  }
  return unusable === null ? { mode: 'handle', reason: "Node's TCP handles are usable" } : { mode: 'socket', reason: unusable };
}

/**
 * Loads the chosen implementation; logs one line saying which and why when `log` is given.
 * `auto` falls back to socket when the handle module refuses to load (bindings changed shape);
 * a forced mode that cannot run throws a sentence saying why.
 */
export async function selectTcpIo(choice: TcpIoChoice, log?: Logger, facts: NodeFacts = currentNodeFacts()): Promise<SelectedTcpIo> {
  const decision = decideTcpIo(choice, facts);
  if ('error' in decision) throw new Error(decision.error);
  let selected: SelectedTcpIo;
  if (decision.mode === 'socket') {
    selected = { io: (await import('./socket/socket-io.js')).socketIo, reason: decision.reason };
  } else {
    try {
      selected = { io: (await import('./handle/handle-io.js')).handleIo, reason: decision.reason };
    } catch (err) {
      const why = (err as Error).message;
      if (choice === 'handle') throw new Error(`handle i/o cannot run here: ${why}`, { cause: err });
      selected = { io: (await import('./socket/socket-io.js')).socketIo, reason: why };
    }
  }
  log?.info({ io: selected.io.mode, choice, reason: selected.reason }, 'edge i/o selected');
  return selected;
}
