// Metrics in the Prometheus text exposition format (version 0.0.4): families of counters, gauges
// and histograms with labels, rendered at scrape time. Counters and histograms that live across
// scrapes are kept here by label set; gauges are read fresh from their source on each scrape.

export type Labels = Record<string, string>;
export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface Sample {
  /** Appended to the family's name (`_bucket`, `_sum`, `_count` for histograms). */
  suffix?: string;
  labels: Labels;
  value: number;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Seconds: 5 ms to 30 s, for request and reconcile durations. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function renderFamilies(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) lines.push(`${f.name}${s.suffix ?? ''}${labelText(s.labels)} ${number(s.value)}`);
  }
  return `${lines.join('\n')}\n`;
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`).join(',')}}`;
}

function number(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function keyOf(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A counter by label set. */
export class Counter {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = keyOf(labels);
    const entry = this.values.get(key);
    if (entry) entry.value += by;
    else this.values.set(key, { labels, value: by });
  }

  family(): MetricFamily {
    return { name: this.name, help: this.help, type: 'counter', samples: [...this.values.values()].map((e) => ({ labels: e.labels, value: e.value })) };
  }
}

/** A histogram by label set, with cumulative buckets as Prometheus reads them. */
export class Histogram {
  private readonly values = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly buckets: readonly number[] = DURATION_BUCKETS,
  ) {}

  observe(labels: Labels, value: number): void {
    const key = keyOf(labels);
    let entry = this.values.get(key);
    if (!entry) this.values.set(key, (entry = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < this.buckets.length; i++) if (value <= (this.buckets[i] as number)) entry.counts[i] = (entry.counts[i] as number) + 1;
    entry.sum += value;
    entry.count++;
  }

  family(): MetricFamily {
    const samples: Sample[] = [];
    for (const e of this.values.values()) {
      this.buckets.forEach((le, i) => samples.push({ suffix: '_bucket', labels: { ...e.labels, le: String(le) }, value: e.counts[i] as number }));
      samples.push({ suffix: '_bucket', labels: { ...e.labels, le: '+Inf' }, value: e.count });
      samples.push({ suffix: '_sum', labels: e.labels, value: e.sum });
      samples.push({ suffix: '_count', labels: e.labels, value: e.count });
    }
    return { name: this.name, help: this.help, type: 'histogram', samples };
  }
}

/** A gauge family from values read now. */
export function gauge(name: string, help: string, samples: { labels?: Labels; value: number }[]): MetricFamily {
  return { name, help, type: 'gauge', samples: samples.map((s) => ({ labels: s.labels ?? {}, value: s.value })) };
}

/** A counter family from totals another part keeps (an edge's report). */
export function counter(name: string, help: string, samples: { labels?: Labels; value: number }[]): MetricFamily {
  return { name, help, type: 'counter', samples: samples.map((s) => ({ labels: s.labels ?? {}, value: s.value })) };
}
