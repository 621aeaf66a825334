// Medians with min/max over repetitions, and ratios against HAProxy (same cores) and direct from
// the same run, rendered as Markdown tables.

export type Samples = Map<string, Map<string, number[]>>; // test/metric -> target -> values

export function record(samples: Samples, key: string, target: string, value: number): void {
  let byTarget = samples.get(key);
  if (byTarget === undefined) samples.set(key, (byTarget = new Map()));
  const list = byTarget.get(target) ?? [];
  list.push(value);
  byTarget.set(target, list);
}

export function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

export interface Row {
  target: string;
  median: number;
  min: number;
  max: number;
  n: number;
  vsHaproxy: number;
  vsDirect: number;
}

/** One row per target; the reference names are looked up among the same key's targets. */
export function rows(samples: Samples, key: string, haproxy: string, direct: string | undefined): Row[] {
  const byTarget = samples.get(key);
  if (byTarget === undefined) return [];
  const ref = median(byTarget.get(haproxy) ?? []);
  const dir = direct === undefined ? NaN : median(byTarget.get(direct) ?? []);
  return [...byTarget.entries()].map(([target, values]) => {
    const finite = values.filter(Number.isFinite);
    const m = median(values);
    return { target, median: m, min: Math.min(...finite), max: Math.max(...finite), n: finite.length, vsHaproxy: m / ref, vsDirect: m / dir };
  });
}

export function table(title: string, unit: string, list: Row[]): string {
  const f = (v: number): string => (!Number.isFinite(v) ? '—' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  const r = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '—');
  const lines = [`### ${title}`, '', `| target | median ${unit} | min | max | n | ÷ HAProxy | ÷ direct |`, '|---|---|---|---|---|---|---|'];
  for (const row of list) lines.push(`| ${row.target} | ${f(row.median)} | ${f(row.min)} | ${f(row.max)} | ${row.n} | ${r(row.vsHaproxy)} | ${r(row.vsDirect)} |`);
  return `${lines.join('\n')}\n`;
}
