// What /healthz says about the server's dependencies (the database, the Docker engine): each is
// probed at most once per `ttlMs`, a probe gives up after `timeoutMs`, and concurrent callers
// share one probe, so a flood of health checks costs the dependencies next to nothing.

export type DependencyStatus = 'up' | 'down';

export interface DependencyReport {
  status: DependencyStatus;
  /** When the probe behind this report ended. */
  checkedAt: string;
  latencyMs: number;
  /** Why it is down. */
  error?: string;
}

export interface DependencyHealthOptions {
  probes: Record<string, () => Promise<unknown>>;
  ttlMs?: number;
  timeoutMs?: number;
  now?: () => number;
}

export interface DependencyHealth {
  /** The latest report per dependency, probing again those older than the TTL. */
  check(): Promise<Record<string, DependencyReport>>;
}

export function createDependencyHealth(options: DependencyHealthOptions): DependencyHealth {
  const ttlMs = options.ttlMs ?? 2_000;
  const timeoutMs = options.timeoutMs ?? 1_500;
  const now = options.now ?? Date.now;
  const state = new Map<string, { report: DependencyReport | null; at: number; pending: Promise<DependencyReport> | null }>();

  function probe(name: string, run: () => Promise<unknown>): Promise<DependencyReport> {
    let entry = state.get(name);
    if (!entry) state.set(name, (entry = { report: null, at: 0, pending: null }));
    const current = entry;
    if (current.report && now() - current.at < ttlMs) return Promise.resolve(current.report);
    // A probe still running (a dependency that hangs) is shared, never stacked.
    if (current.pending) return current.pending;
    const started = now();
    current.pending = withTimeout(Promise.resolve().then(run), timeoutMs).then(
      () => ({ status: 'up' as const }),
      (err: unknown) => ({ status: 'down' as const, error: reasonOf(err) }),
    ).then((result) => {
      const report: DependencyReport = { ...result, checkedAt: new Date(now()).toISOString(), latencyMs: now() - started };
      current.report = report;
      current.at = now();
      current.pending = null;
      return report;
    });
    return current.pending;
  }

  return {
    async check() {
      const names = Object.keys(options.probes);
      const reports = await Promise.all(names.map((n) => probe(n, options.probes[n] as () => Promise<unknown>)));
      return Object.fromEntries(names.map((n, i) => [n, reports[i] as DependencyReport]));
    },
  };
}

function withTimeout(work: Promise<unknown>, ms: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
    work.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

function reasonOf(err: unknown): string {
  const e = err as { message?: unknown; code?: unknown; cause?: { message?: unknown; code?: unknown } };
  const message = typeof e?.message === 'string' && e.message ? e.message : String(err);
  const cause = e?.cause && typeof e.cause.code === 'string' ? ` (${e.cause.code})` : typeof e?.code === 'string' && !message.includes(e.code) ? ` (${e.code})` : '';
  const text = `${message}${cause}`;
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}
