// Fault injection for the volume move's proofs (PIER_VOLUME_MOVE_FAULT, api/volumes/volume-mover.ts):
// a failure or a hold at a phase, or a final send cut short. Tests only.
import { MOVE_PHASES, type MovePhase } from '../../db/schema/index.js';
import { PierError } from '../pier-error.js';

/**
 * Fault injection for the proofs (PIER_VOLUME_MOVE_FAULT), met once by the first move that gets
 * there: `fail:PHASE`, `hold:PHASE` (stops there, as if the server died), `truncate:BYTES` (the final send).
 */
export type MoveFault = { kind: 'fail' | 'hold'; phase: MovePhase } | { kind: 'truncate'; bytes: number };

export function parseMoveFault(text: string | undefined): MoveFault | undefined {
  if (!text) return undefined;
  const [kind, arg] = text.split(':');
  if ((kind === 'fail' || kind === 'hold') && MOVE_PHASES.includes(arg as MovePhase)) return { kind, phase: arg as MovePhase };
  if (kind === 'truncate' && /^\d+$/.test(arg ?? '')) return { kind, bytes: Number(arg) };
  throw new PierError('E_CONFIG_INVALID', `PIER_VOLUME_MOVE_FAULT "${text}" is not fail:PHASE, hold:PHASE or truncate:BYTES`, { status: 400, hint: 'it is for tests; unset it' });
}
