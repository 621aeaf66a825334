// The soak's summary, as Markdown (it goes into docs/operations.md as it is): faults by kind,
// each fault's window (from the injection to 30 s after the recovery) with the edge probes and
// requests that failed in it, requests by kind and error code, edge probes, the server's
// error-level log lines, the end checks and the findings.
import { FAULT_KINDS, PROBE_OUTCOMES, type FaultRecord, type ProbeOutcome, type Tally } from './soak-tally.js';
import type { CheckResult } from './soak-state-check.js';

/** After a dependency is back, failures for this long still belong to its fault. */
export const GRACE_MS = 30_000;

export interface ReportInput {
  tally: Tally;
  seed: number;
  minutes: number;
  /** Wall-clock time of the whole run, setup and checks included. */
  totalMs: number;
  checks: CheckResult[];
  settledMs: number | null;
  errorLines: Map<string, number>;
  deployments: Map<string, number>;
  commit: string;
}

/** The fault whose window holds `at` (the latest one started before it), or null. */
export function windowOf(faults: readonly FaultRecord[], at: number, end: number): FaultRecord | null {
  let found: FaultRecord | null = null;
  for (const f of faults) if (f.at <= at && at <= (f.recoveredAt ?? end) + GRACE_MS) found = f;
  return found;
}

export function formatReport(input: ReportInput): string {
  const { tally } = input;
  const end = tally.now();
  const s = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
  const out: string[] = [];
  const table = (head: string[], rows: (string | number)[][]): void => {
    out.push(`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`), '');
  };

  out.push(`Seed ${input.seed}, ${input.minutes} min of faults and load, ${s(input.totalMs)} in all (setup, settling and checks included); commit ${input.commit}.`, '');

  out.push('**Faults injected**', '');
  table(
    ['kind', 'count', 'down (mean)', 'back after (mean / max)'],
    FAULT_KINDS.map((kind) => {
      const fs = tally.faults.filter((f) => f.kind === kind);
      const back = fs.filter((f) => f.recoveredAt !== null).map((f) => (f.recoveredAt as number) - f.at);
      return [kind, fs.length, fs.length ? s(mean(fs.map((f) => f.downMs))) : '-', back.length ? `${s(mean(back))} / ${s(Math.max(...back))}` : '-'];
    }).concat([['all', tally.faults.length, '', '']]),
  );

  out.push('**Each fault window** (injection to 30 s after recovery): edge probes that failed, requests that failed', '');
  table(
    ['at', 'fault', 'down', 'back after', 'probes ok', 'refused', 'reset', 'closed', 'timeout', 'requests failed (codes)'],
    tally.faults.map((f) => {
      const probes = tally.probes.filter((p) => windowOf(tally.faults, p.at, end) === f);
      const failed = tally.requests.filter((r) => r.outcome === 'failed' && windowOf(tally.faults, r.at, end) === f);
      const count = (o: ProbeOutcome): number => probes.filter((p) => p.outcome === o).length;
      return [s(f.at), f.kind, s(f.downMs), f.recoveredAt === null ? `never${f.note ? `: ${f.note}` : ''}` : s(f.recoveredAt - f.at), count('ok'), count('refused'), count('reset'), count('closed'), count('timeout') + count('wrong-reply'), `${failed.length}${failed.length ? ` (${codes(failed.map((r) => r.code ?? '?'))})` : ''}`];
    }),
  );

  out.push('**Requests** by kind (expected: refused as they must be, e.g. a crashing deploy failing)', '');
  const kinds = [...new Set(tally.requests.map((r) => r.kind))].sort();
  table(
    ['kind', 'made', 'ok', 'expected', 'failed', 'failure codes', 'expected codes'],
    kinds.map((kind) => {
      const rs = tally.requests.filter((r) => r.kind === kind);
      const failed = rs.filter((r) => r.outcome === 'failed');
      const expected = rs.filter((r) => r.outcome === 'expected');
      return [kind, rs.length, rs.filter((r) => r.outcome === 'ok').length, expected.length, failed.length, codes(failed.map((r) => r.code ?? '?')) || '-', codes(expected.map((r) => r.code ?? '?')) || '-'];
    }).concat([['all', tally.requests.length, tally.requests.filter((r) => r.outcome === 'ok').length, tally.requests.filter((r) => r.outcome === 'expected').length, tally.requests.filter((r) => r.outcome === 'failed').length, '', '']]),
  );

  out.push('**Failed requests by error code**, in a fault window or outside any', '');
  const failedAll = tally.requests.filter((r) => r.outcome === 'failed');
  table(
    ['code', 'in a fault window', 'outside', 'example'],
    [...new Set(failedAll.map((r) => r.code ?? '?'))].sort().map((code) => {
      const rs = failedAll.filter((r) => (r.code ?? '?') === code);
      const inside = rs.filter((r) => windowOf(tally.faults, r.at, end) !== null).length;
      return [code, inside, rs.length - inside, `${rs[0]?.kind}: ${(rs[0]?.message ?? '').replace(/\|/g, '/').replace(/\s+/g, ' ').slice(0, 120)}`];
    }),
  );

  out.push('**Edge probes** (one connection every 200 ms through endpoint 9000, 127.0.0.1 and ::1 alternately)', '');
  const groups: [string, (at: number) => boolean][] = [
    ...FAULT_KINDS.map((k): [string, (at: number) => boolean] => [`during ${k}`, (at) => windowOf(tally.faults, at, end)?.kind === k]),
    ['outside fault windows', (at) => windowOf(tally.faults, at, end) === null],
    ['all', () => true],
  ];
  table(
    ['when', 'probes', ...PROBE_OUTCOMES],
    groups.map(([name, pred]) => {
      const ps = tally.probes.filter((p) => pred(p.at));
      return [name, ps.length, ...PROBE_OUTCOMES.map((o) => ps.filter((p) => p.outcome === o).length)];
    }),
  );

  out.push('**Rollouts** (deployments by final state, from the database)', '');
  table(['app and state', 'deployments'], [...input.deployments].sort().map(([k, n]) => [k, n]));

  out.push("**Server log lines at level error or above**, by message", '');
  const lines = [...input.errorLines].sort((a, b) => b[1] - a[1]);
  if (lines.length === 0) out.push('none', '');
  else table(['message', 'count'], lines.slice(0, 20).map(([m, n]) => [m.replace(/\|/g, '/'), n]));

  out.push(`**End checks** (after ${input.settledMs === null ? 'the settle timeout: Pier did not converge' : `settling for ${s(input.settledMs)}`})`, '');
  table(['check', 'result', 'detail'], input.checks.map((c) => [c.name, c.info ? 'info' : c.ok ? 'pass' : '**FAIL**', c.detail.replace(/\|/g, '/').replace(/\n/g, ' ')]));

  out.push(`**Findings**: ${tally.findings.length === 0 ? 'none' : tally.findings.length}`, '');
  for (const f of tally.findings) out.push(`- ${s(f.at)} ${f.what}: ${f.detail.split('\n')[0]}`);
  return out.join('\n');
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** "E_X×3, E_Y×1", most frequent first. */
function codes(list: string[]): string {
  const counts = new Map<string, number>();
  for (const c of list) counts.set(c, (counts.get(c) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c}×${n}`).join(', ');
}
