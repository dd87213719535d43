import { z } from 'zod';
import type { StaticRoute } from './http-gateway.ts';

/*
 * The local runtime's GET /metrics: the EMF documents the handlers flush (shared/metrics.ts), the
 * very lines CloudWatch Logs turns into metrics on AWS, kept as Prometheus series and rendered in
 * the text exposition format (version 0.0.4).
 *
 * A metric `Name` in namespace `N` (its first part: the stack's `OrderSaga/<stack>` is `OrderSaga`)
 * becomes `<n>_<name>` in snake case (OrderSaga/OrdersPlaced → order_saga_orders_placed):
 * - unit Count: a counter, `…_total`, increased by each value;
 * - a time unit (Seconds, Milliseconds, Microseconds): a histogram in seconds, `…_seconds`;
 * - any other unit: a histogram of the values as they are, suffixed with the unit (None: no suffix).
 * Each of the directive's dimension sets is a series labelled with those dimensions, as each is a
 * metric of its own in CloudWatch. So a metric emitted twice (the total, and a breakdown by
 * `reason`, shared/metric-names.ts) has a series without `reason` and one per reason in the same
 * family: select `{reason=""}` for the total or `{reason!=""}` for the breakdown, never sum both.
 *
 * Not mirrored: CloudWatch's statistics and its one-minute aggregation (Prometheus computes rates
 * and quantiles at query time), the document's Timestamp (a sample is as of the scrape), metrics
 * from before the runtime started (the registry lives in memory).
 */

/** The Content-Type of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Upper bounds in seconds: milliseconds (bridge lag) to the payment timeout's minutes. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
];

export interface PrometheusRegistry {
  /** Adds one EMF document, a JSON line as Powertools prints it; throws InvalidEmfError if it is none. */
  record(emf: string): void;
  /** Every series recorded so far, in the text exposition format. */
  render(): string;
}

/** A line that is not an EMF document, or one whose dimensions or values are missing. */
export class InvalidEmfError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'InvalidEmfError';
  }
}

const EmfSchema = z.looseObject({
  _aws: z.looseObject({
    CloudWatchMetrics: z.array(
      z.looseObject({
        Namespace: z.string().min(1),
        Dimensions: z.array(z.array(z.string().min(1))),
        Metrics: z.array(z.looseObject({ Name: z.string().min(1), Unit: z.string().optional() })).min(1),
      }),
    ),
  }),
});
const ValuesSchema = z.union([z.number(), z.array(z.number())]);

const TIME_UNITS: Readonly<Record<string, number>> = { Seconds: 1, Milliseconds: 1e-3, Microseconds: 1e-6 };

/** `OrderSaga` → `order_saga`, `HTTPErrors` → `http_errors`: a valid metric or label name. */
export function snakeCase(name: string): string {
  const snake = name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  return /^[0-9]/.test(snake) ? `_${snake}` : snake;
}

const escapeLabelValue = (value: string) =>
  value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const escapeHelp = (text: string) => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

type Labels = ReadonlyArray<readonly [string, string]>;

const renderLabels = (labels: Labels, extra?: readonly [string, string]) => {
  const all = extra ? [...labels, extra] : labels;
  return all.length === 0
    ? ''
    : `{${all.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`;
};

const formatNumber = (value: number) =>
  Number.isNaN(value) ? 'NaN' : value === Infinity ? '+Inf' : value === -Infinity ? '-Inf' : String(value);

interface CounterSeries {
  labels: Labels;
  value: number;
}

interface HistogramSeries {
  labels: Labels;
  /** Observations at or below each bound (not yet cumulative). */
  buckets: number[];
  sum: number;
  count: number;
}

/** A family's series in a stable order: by their labels. */
const sorted = <S extends { labels: Labels }>(series: Map<string, S>): S[] =>
  [...series].sort(([a], [b]) => a.localeCompare(b)).map(([, one]) => one);

type Family =
  | { type: 'counter'; help: string; series: Map<string, CounterSeries> }
  | { type: 'histogram'; help: string; series: Map<string, HistogramSeries> };

export function prometheusRegistry(options: { buckets?: readonly number[] } = {}): PrometheusRegistry {
  const bounds = [...(options.buckets ?? DEFAULT_BUCKETS)].sort((a, b) => a - b);
  const families = new Map<string, Family>();

  function familyOf(name: string, type: Family['type'], help: string): Family {
    let family = families.get(name);
    if (!family) {
      family = type === 'counter' ? { type, help, series: new Map() } : { type, help, series: new Map() };
      families.set(name, family);
    }
    if (family.type !== type) throw new InvalidEmfError(`${name} is a ${family.type}, not a ${type}`);
    return family;
  }

  function observe(family: Family, labels: Labels, values: readonly number[]): void {
    const key = JSON.stringify(labels);
    if (family.type === 'counter') {
      const series = family.series.get(key) ?? { labels, value: 0 };
      series.value += values.reduce((sum, value) => sum + value, 0);
      family.series.set(key, series);
      return;
    }
    const series = family.series.get(key) ?? { labels, buckets: bounds.map(() => 0), sum: 0, count: 0 };
    for (const value of values) {
      const index = bounds.findIndex((bound) => value <= bound);
      if (index >= 0) series.buckets[index]! += 1;
      series.sum += value;
      series.count += 1;
    }
    family.series.set(key, series);
  }

  return {
    record(emf) {
      let json: unknown;
      try {
        json = JSON.parse(emf);
      } catch (error) {
        throw new InvalidEmfError('not JSON', { cause: error });
      }
      const parsed = EmfSchema.safeParse(json);
      if (!parsed.success) throw new InvalidEmfError('not an EMF document', { cause: parsed.error });
      const document = json as Record<string, unknown>;
      for (const directive of parsed.data._aws.CloudWatchMetrics) {
        const labelSets = directive.Dimensions.map((dimensions): Labels => {
          const labels = dimensions.map((dimension): [string, string] => {
            const value = document[dimension];
            if (typeof value !== 'string') throw new InvalidEmfError(`dimension ${dimension} has no value`);
            return [snakeCase(dimension), value];
          });
          return labels.sort(([a], [b]) => a.localeCompare(b));
        });
        // No dimension sets: one series without labels, as CloudWatch keeps one metric.
        if (labelSets.length === 0) labelSets.push([]);
        // The namespace's first part (`OrderSaga` of `OrderSaga/<stack>`): one set of names per machine.
        const prefix = snakeCase(directive.Namespace.split('/')[0]!);
        for (const { Name, Unit = 'None' } of directive.Metrics) {
          const values = ValuesSchema.safeParse(document[Name]);
          if (!values.success) throw new InvalidEmfError(`metric ${Name} has no numeric value`);
          const raw = Array.isArray(values.data) ? values.data : [values.data];
          const help = `${directive.Namespace} ${Name} (EMF, unit ${Unit})`;
          const base = `${prefix}_${snakeCase(Name)}`;
          const scale = TIME_UNITS[Unit];
          const family =
            Unit === 'Count'
              ? familyOf(`${base}_total`, 'counter', help)
              : scale !== undefined
                ? familyOf(`${base}_seconds`, 'histogram', help)
                : familyOf(Unit === 'None' ? base : `${base}_${snakeCase(Unit)}`, 'histogram', help);
          const converted = scale === undefined ? raw : raw.map((value) => value * scale);
          for (const labels of labelSets) observe(family, labels, converted);
        }
      }
    },

    render() {
      const lines: string[] = [];
      for (const [name, family] of [...families].sort(([a], [b]) => a.localeCompare(b))) {
        lines.push(`# HELP ${name} ${escapeHelp(family.help)}`, `# TYPE ${name} ${family.type}`);
        if (family.type === 'counter') {
          for (const series of sorted(family.series))
            lines.push(`${name}${renderLabels(series.labels)} ${formatNumber(series.value)}`);
          continue;
        }
        for (const series of sorted(family.series)) {
          let cumulative = 0;
          bounds.forEach((bound, index) => {
            cumulative += series.buckets[index]!;
            const labels = renderLabels(series.labels, ['le', formatNumber(bound)]);
            lines.push(`${name}_bucket${labels} ${cumulative}`);
          });
          lines.push(
            `${name}_bucket${renderLabels(series.labels, ['le', '+Inf'])} ${series.count}`,
            `${name}_sum${renderLabels(series.labels)} ${formatNumber(series.sum)}`,
            `${name}_count${renderLabels(series.labels)} ${series.count}`,
          );
        }
      }
      return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
    },
  };
}

/** GET /metrics on the local API (http-gateway.ts), rendering `registry` at each scrape. */
export function metricsRoute(registry: PrometheusRegistry): StaticRoute {
  return {
    path: '/metrics',
    respond: async () => ({ contentType: PROMETHEUS_CONTENT_TYPE, body: registry.render() }),
  };
}
