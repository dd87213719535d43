/*
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests: it refuses what a
 * Prometheus server would refuse to scrape (a malformed line, a sample before its family's TYPE, a
 * family split in two, a histogram whose buckets are not cumulative or end without `+Inf`), and
 * answers the samples so that tests can read the values.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  samples: Sample[];
  /** The value of the one sample with exactly these labels; undefined when there is none. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

function parseValue(text: string, line: string): number {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value in: ${line}`);
  return Number(text);
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const match = /^([^=]+)="((?:[^"\\]|\\.)*)"(,|$)/.exec(rest);
    if (!match || !LABEL_NAME.test(match[1]!)) throw new Error(`bad labels in: ${line}`);
    if (match[1]! in labels) throw new Error(`repeated label ${match[1]} in: ${line}`);
    labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_, escaped: string) =>
      escaped === 'n' ? '\n' : escaped,
    );
    rest = rest.slice(match[0].length);
  }
  return labels;
}

/** The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` are its own. */
function familyOf(name: string, types: Map<string, string>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && ['histogram', 'summary'].includes(types.get(base) ?? '')) return base;
  }
  return name;
}

export function parsePrometheusText(text: string): Exposition {
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const finished = new Set<string>();
  let currentFamily: string | undefined;
  for (const line of text.split('\n').slice(0, -1)) {
    if (line.startsWith('#')) {
      const match = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!match) continue; // a plain comment
      const [, kind, name, rest] = match;
      if (!NAME.test(name!)) throw new Error(`bad metric name in: ${line}`);
      if (kind === 'TYPE') {
        if (!TYPES.has(rest!)) throw new Error(`bad type in: ${line}`);
        if (types.has(name!)) throw new Error(`second TYPE for ${name}`);
        types.set(name!, rest!);
      }
      continue;
    }
    if (line.trim() === '') continue;
    const match = /^([^\s{]+)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$/.exec(line);
    if (!match || !NAME.test(match[1]!)) throw new Error(`bad sample line: ${line}`);
    const name = match[1]!;
    const family = familyOf(name, types);
    if (!types.has(family)) throw new Error(`sample before its TYPE: ${line}`);
    if (family !== currentFamily) {
      if (finished.has(family)) throw new Error(`family ${family} is split in two`);
      if (currentFamily) finished.add(currentFamily);
      currentFamily = family;
    }
    samples.push({ name, labels: parseLabels(match[2] ?? '', line), value: parseValue(match[3]!, line) });
  }
  checkHistograms(types, samples);
  return {
    types,
    samples,
    value(name, labels = {}) {
      const wanted = JSON.stringify(Object.entries(labels).sort());
      return samples.find(
        (sample) => sample.name === name && JSON.stringify(Object.entries(sample.labels).sort()) === wanted,
      )?.value;
    },
  };
}

/** Each histogram series: buckets cumulative, ascending `le`, the last `+Inf` and equal to `_count`. */
function checkHistograms(types: Map<string, string>, samples: Sample[]): void {
  for (const [family, type] of types) {
    if (type !== 'histogram') continue;
    const series = new Map<string, Sample[]>();
    for (const sample of samples.filter((one) => one.name === `${family}_bucket`)) {
      const { le, ...labels } = sample.labels;
      if (le === undefined) throw new Error(`${family}_bucket without le`);
      const key = JSON.stringify(Object.entries(labels).sort());
      series.set(key, [...(series.get(key) ?? []), sample]);
    }
    for (const [key, buckets] of series) {
      const bounds = buckets.map((bucket) => parseValue(bucket.labels.le!, family));
      if (bounds.at(-1) !== Infinity) throw new Error(`${family}${key}: no +Inf bucket`);
      for (let i = 1; i < buckets.length; i++) {
        if (bounds[i]! <= bounds[i - 1]!) throw new Error(`${family}${key}: le not ascending`);
        if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${family}${key}: not cumulative`);
      }
      const labels = Object.fromEntries(JSON.parse(key) as Array<[string, string]>);
      const count = samples.find(
        (one) =>
          one.name === `${family}_count` &&
          JSON.stringify(Object.entries(one.labels).sort()) === JSON.stringify(Object.entries(labels).sort()),
      );
      if (count?.value !== buckets.at(-1)!.value)
        throw new Error(`${family}${key}: _count is not the +Inf bucket`);
    }
  }
}
