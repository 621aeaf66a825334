// A strict reader of the Prometheus text format (0.0.4) for tests: every family has HELP and TYPE
// before its samples, names and labels follow the grammar, label values are escaped, values are
// numbers, a histogram has cumulative buckets ending in +Inf with _sum and _count. Throws on the
// first problem, naming the line.

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  type: string;
  help: string;
  samples: ParsedSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;

export function parsePrometheusText(text: string): Map<string, ParsedFamily> {
  const families = new Map<string, ParsedFamily>();
  if (!text.endsWith('\n')) throw new Error('the text does not end with a newline');
  let current: ParsedFamily | null = null;
  text.split('\n').slice(0, -1).forEach((line, i) => {
    const where = `line ${i + 1} (${line})`;
    if (line.startsWith('# HELP ')) {
      const [name, ...help] = line.slice(7).split(' ');
      if (!name || !NAME.test(name)) throw new Error(`${where}: bad metric name`);
      if (families.has(name)) throw new Error(`${where}: family ${name} appears twice`);
      current = { name, type: '', help: help.join(' '), samples: [] };
      families.set(name, current);
      return;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ');
      if (!current || current.name !== name) throw new Error(`${where}: TYPE without its HELP`);
      if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type ?? '')) throw new Error(`${where}: unknown type`);
      current.type = type as string;
      return;
    }
    if (line.startsWith('#') || line === '') throw new Error(`${where}: unexpected line`);
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    const fam = current as ParsedFamily | null;
    if (!fam || !fam.type) throw new Error(`${where}: a sample outside a family`);
    const name = m[1] as string;
    const allowed = fam.type === 'histogram' ? [`${fam.name}_bucket`, `${fam.name}_sum`, `${fam.name}_count`] : [fam.name];
    if (!allowed.includes(name)) throw new Error(`${where}: sample ${name} in family ${fam.name}`);
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : m[4] === 'NaN' ? NaN : Number(m[4]);
    if (Number.isNaN(value) && m[4] !== 'NaN') throw new Error(`${where}: value is not a number`);
    fam.samples.push({ name, labels: parseLabels(m[3] ?? '', where), value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length) {
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\n"])*)"(,|$)/.exec(rest);
    if (!m) throw new Error(`${where}: bad labels at ${rest}`);
    if ((m[1] as string) in labels) throw new Error(`${where}: label ${m[1]} twice`);
    labels[m[1] as string] = (m[2] as string).replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
    rest = rest.slice(m[0].length);
  }
  return labels;
}

function checkHistogram(f: ParsedFamily): void {
  const series = new Map<string, ParsedSample[]>();
  for (const s of f.samples.filter((x) => x.name.endsWith('_bucket'))) {
    const { le: _le, ...rest } = s.labels;
    const key = JSON.stringify(rest);
    series.set(key, [...(series.get(key) ?? []), s]);
  }
  for (const [key, buckets] of series) {
    const last = buckets.at(-1);
    if (last?.labels.le !== '+Inf') throw new Error(`${f.name}${key}: the last bucket is not +Inf`);
    for (let i = 1; i < buckets.length; i++) if ((buckets[i] as ParsedSample).value < (buckets[i - 1] as ParsedSample).value) throw new Error(`${f.name}${key}: buckets are not cumulative`);
    const count = f.samples.find((s) => s.name === `${f.name}_count` && JSON.stringify(s.labels) === key);
    if (!count || count.value !== last.value) throw new Error(`${f.name}${key}: _count differs from the +Inf bucket`);
    if (!f.samples.some((s) => s.name === `${f.name}_sum` && JSON.stringify(s.labels) === key)) throw new Error(`${f.name}${key}: no _sum`);
  }
}
