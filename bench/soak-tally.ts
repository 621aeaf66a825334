// What the soak saw, as it happened: faults injected, requests made and how they ended, edge
// probes, and findings (what makes the run fail). Times are milliseconds since the run started.
// soak-report.ts turns these records into the summary.

export const FAULT_KINDS = ['docker-kill', 'docker-term', 'postgres-immediate', 'postgres-fast', 'api-kill', 'server-restart'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export const PROBE_OUTCOMES = ['ok', 'refused', 'reset', 'closed', 'timeout', 'wrong-reply'] as const;
/** refused: ECONNREFUSED; reset: ECONNRESET or EPIPE; closed: ended before the whole echo came back. */
export type ProbeOutcome = (typeof PROBE_OUTCOMES)[number];

export interface FaultRecord {
  kind: FaultKind;
  at: number;
  /** How long the dependency was kept down (0: restarted at once). */
  downMs: number;
  /** When it answered again; null if it never did. */
  recoveredAt: number | null;
  note: string;
}

/**
 * ok: did what was asked. expected: refused as it must be (a crashing deploy failing, a missing
 * image refused). failed: anything else, with its code.
 */
export type RequestOutcome = 'ok' | 'expected' | 'failed';

export interface RequestRecord {
  kind: string;
  at: number;
  outcome: RequestOutcome;
  /** The error code (E_…, a CLI exit, a socket error); null when ok. */
  code: string | null;
  message: string;
  ms: number;
}

export interface ProbeRecord {
  at: number;
  family: 4 | 6;
  outcome: ProbeOutcome;
}

export interface Finding {
  at: number;
  what: string;
  detail: string;
}

export interface Tally {
  readonly startedAt: number;
  readonly faults: FaultRecord[];
  readonly requests: RequestRecord[];
  readonly probes: ProbeRecord[];
  readonly findings: Finding[];
  /** Milliseconds since the start. */
  now(): number;
  fault(kind: FaultKind, downMs: number, note?: string): FaultRecord;
  /** Records a request that just ended. */
  request(record: Omit<RequestRecord, 'at'>): void;
  probe(family: 4 | 6, outcome: ProbeOutcome, at: number): void;
  finding(what: string, detail: string): void;
}

export function createTally(log: (line: string) => void, clock: () => number = Date.now): Tally {
  const startedAt = clock();
  const now = (): number => clock() - startedAt;
  const tally: Tally = {
    startedAt,
    faults: [],
    requests: [],
    probes: [],
    findings: [],
    now,
    fault(kind, downMs, note = '') {
      const record: FaultRecord = { kind, at: now(), downMs, recoveredAt: null, note };
      tally.faults.push(record);
      return record;
    },
    request(record) {
      tally.requests.push({ ...record, at: now() });
      if (record.code === 'E_INTERNAL') tally.finding('E_INTERNAL', `${record.kind}: ${record.message}`);
    },
    probe(family, outcome, at) {
      tally.probes.push({ at, family, outcome });
    },
    finding(what, detail) {
      tally.findings.push({ at: now(), what, detail });
      log(`FINDING ${what}: ${detail}`);
    },
  };
  return tally;
}
