// Words for why a container stopped: exit code, signal, OOM, or Docker's own error.
import type { ContainerInfo } from '../runtime/runtime.js';

export interface ExitReason {
  /** Stable short reason for events: exited | killed | oom | start-failed | missing. */
  reason: 'exited' | 'killed' | 'oom' | 'start-failed' | 'missing';
  exitCode: number | null;
  oom: boolean;
  message: string;
}

const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

export function describeExit(instanceId: string, info: ContainerInfo | null): ExitReason {
  if (!info) {
    return { reason: 'missing', exitCode: null, oom: false, message: `${instanceId}: its container was removed outside Pier` };
  }
  if (info.oomKilled) {
    return { reason: 'oom', exitCode: info.exitCode, oom: true, message: `${instanceId} was killed: out of memory (OOM)` };
  }
  if (info.error) {
    return { reason: 'start-failed', exitCode: info.exitCode, oom: false, message: `${instanceId} failed to start: ${info.error}` };
  }
  const code = info.exitCode ?? -1;
  if (code > 128 && code < 160) {
    const n = code - 128;
    const name = SIGNALS[n] ?? `signal ${n}`;
    return { reason: 'killed', exitCode: code, oom: false, message: `${instanceId} exited with code ${code} (killed by ${name})` };
  }
  return { reason: 'exited', exitCode: code, oom: false, message: `${instanceId} exited with code ${code}` };
}
