// Medians with min/max over repetitions, and ratios against HAProxy (same cores), direct and the
// bare Node proxy on the same TCP I/O, rendered as Markdown tables. Ratios are taken round by
// round (each sample against the reference's sample of the same round, measured minutes apart at
// most) and their median reported, so drift on a shared machine cancels out.

export type Samples = Map<string, Map<string, number[]>>; // test/metric -> target -> values in round order

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

/** The value at quantile q (0..1) of the finite values, linearly interpolated. */
function quantile(values: number[], q: number): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const at = (v.length - 1) * q;
  const lo = Math.floor(at);
  return (v[lo] as number) + ((v[Math.min(lo + 1, v.length - 1)] as number) - (v[lo] as number)) * (at - lo);
}

/** Median of the round-by-round ratios of `values` to `reference`. */
export function pairedRatio(values: number[], reference: number[] | undefined): number {
  if (reference === undefined) return NaN;
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(values.length, reference.length); i++) ratios.push((values[i] as number) / (reference[i] as number));
  return median(ratios);
}

export interface Row {
  target: string;
  median: number;
  q1: number;
  q3: number;
  min: number;
  max: number;
  n: number;
  vsHaproxy: number;
  vsDirect: number;
  /** An edge against the bare proxy on the same I/O (`edge-handle-1w` ÷ `bare-handle-1w`). */
  vsBare: number;
}

/** One row per target; the reference names are looked up among the same key's targets. */
export function rows(samples: Samples, key: string, haproxy: string, direct: string | undefined): Row[] {
  const byTarget = samples.get(key);
  if (byTarget === undefined) return [];
  return [...byTarget.entries()].map(([target, values]) => {
    const finite = values.filter(Number.isFinite);
    const bare = target.startsWith('edge-') ? byTarget.get(target.replace(/^edge-/, 'bare-')) : undefined;
    return {
      target,
      median: median(values),
      q1: quantile(values, 0.25),
      q3: quantile(values, 0.75),
      min: Math.min(...finite),
      max: Math.max(...finite),
      n: finite.length,
      vsHaproxy: pairedRatio(values, byTarget.get(haproxy)),
      vsDirect: direct === undefined ? NaN : pairedRatio(values, byTarget.get(direct)),
      vsBare: pairedRatio(values, bare),
    };
  });
}

const num = (v: number): string => (!Number.isFinite(v) ? '—' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
const ratio = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '—');
const percent = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(1)} %` : '—');

export function table(title: string, unit: string, list: Row[]): string {
  const lines = [`### ${title}`, '', `| target | median ${unit} | min | max | n | ÷ HAProxy | ÷ direct | ÷ bare, same i/o |`, '|---|---|---|---|---|---|---|---|'];
  for (const row of list) {
    lines.push(`| ${row.target} | ${num(row.median)} | ${num(row.min)} | ${num(row.max)} | ${row.n} | ${ratio(row.vsHaproxy)} | ${ratio(row.vsDirect)} | ${ratio(row.vsBare)} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** For costs (fractions): median with the middle half of the samples, so a spread is visible. */
export function costTable(title: string, list: Row[]): string {
  const lines = [`### ${title}`, '', '| target | median | middle half (q1 … q3) | min … max | n |', '|---|---|---|---|---|'];
  for (const row of list) lines.push(`| ${row.target} | ${percent(row.median)} | ${percent(row.q1)} … ${percent(row.q3)} | ${percent(row.min)} … ${percent(row.max)} | ${row.n} |`);
  return `${lines.join('\n')}\n`;
}
