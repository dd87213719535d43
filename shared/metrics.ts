import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { MetricsOptions } from '@aws-lambda-powertools/metrics/types';
import { AsyncLocalStorage } from 'node:async_hooks';
import { logger } from './logger.ts';
import { METRICS_NAMESPACE, type MetricName } from './metric-names.ts';

/** What one invocation's metrics carry, and where they go, when several functions share a process. */
export interface MetricsScope {
  /** The function's `POWERTOOLS_SERVICE_NAME`: the `service` dimension of its metrics. */
  serviceName: string;
  /** The function's `POWERTOOLS_METRICS_NAMESPACE`; default METRICS_NAMESPACE. */
  namespace?: string;
  /** Receives each EMF document the invocation flushes, as the line Powertools would print. */
  write: (emf: string) => void;
}

/**
 * Where Powertools' own diagnostics go: the structured log. The flush of an invocation that counted
 * nothing (most of them: a GET, a step that changed nothing) is not worth a warning each time.
 */
const diagnostics = {
  debug: (...content: unknown[]) => logger.debug(String(content[0]), { detail: content.slice(1) }),
  info: (...content: unknown[]) => logger.info(String(content[0]), { detail: content.slice(1) }),
  warn: (...content: unknown[]) =>
    String(content[0]).startsWith('No application metrics to publish')
      ? logger.debug(String(content[0]))
      : logger.warn(String(content[0]), { detail: content.slice(1) }),
  error: (...content: unknown[]) => logger.error(String(content[0]), { detail: content.slice(1) }),
};

/**
 * A Metrics whose EMF goes to the scope's `write` instead of stdout. Powertools always prints EMF
 * with a console of its own (no option redirects it), so the flush is rebuilt on its public API.
 */
class ScopedMetrics extends Metrics {
  readonly #scope: MetricsScope;

  constructor(scope: MetricsScope, options: MetricsOptions = {}) {
    super({
      namespace: scope.namespace || METRICS_NAMESPACE,
      serviceName: scope.serviceName,
      logger: diagnostics,
      ...options,
    });
    this.#scope = scope;
  }

  override publishStoredMetrics(): this {
    try {
      if (this.hasStoredMetrics()) this.#scope.write(JSON.stringify(this.serializeMetrics()));
    } finally {
      this.clearMetrics();
      this.clearDimensions();
      this.clearMetadata();
    }
    return this;
  }

  override singleMetric(): Metrics {
    return new ScopedMetrics(this.#scope, { singleMetric: true });
  }
}

interface ActiveScope {
  scope: MetricsScope;
  metrics?: Metrics;
}

const scopes = new AsyncLocalStorage<ActiveScope>();

/** The stack sets POWERTOOLS_METRICS_NAMESPACE and POWERTOOLS_SERVICE_NAME; Powertools reads the service. */
const processMetrics = new Metrics({
  namespace: process.env.POWERTOOLS_METRICS_NAMESPACE || METRICS_NAMESPACE,
  logger: diagnostics,
});

function current(): Metrics {
  const active = scopes.getStore();
  if (!active) return processMetrics;
  active.metrics ??= new ScopedMetrics(active.scope);
  return active.metrics;
}

/**
 * Runs `run` (one invocation) with metrics of its own: the exported `metrics` buffers and flushes
 * them with the scope's service and namespace, into the scope's `write`.
 *
 * On AWS each function has a process of its own and prints its EMF to stdout, where CloudWatch Logs
 * extracts the metrics. The local runtime imports every handler into one process, so one
 * module-level Metrics would name one service for all, and one invocation's flush would take
 * another's metrics with it; its Lambda host runs each invocation in a scope instead (as it does
 * for logs, shared/logger.ts `withLogScope`), and reads the EMF from `write`.
 */
export function withMetricsScope<T>(scope: MetricsScope, run: () => T): T {
  return scopes.run({ scope }, run);
}

/**
 * The Powertools `Metrics` the handlers flush (`logMetrics`, shared/lambda-edge.ts): the process's
 * own, or inside `withMetricsScope` the invocation's. Modules record through `addCount` and
 * `addDuration`.
 */
export const metrics: Metrics = new Proxy(processMetrics, {
  get(_target, property) {
    const target = current();
    const value: unknown = Reflect.get(target, property, target);
    return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
  },
});

/**
 * A breakdown dimension (`reason`, `outcome`, `result`): a handful of values, never an id, since
 * every value is a metric of its own in CloudWatch.
 */
export type Breakdown = Readonly<Partial<Record<'reason' | 'outcome' | 'result', string>>>;

function add(
  name: MetricName,
  unit: (typeof MetricUnit)[keyof typeof MetricUnit],
  value: number,
  breakdown?: Breakdown,
): void {
  // The total: buffered, flushed with the invocation.
  metrics.addMetric(name, unit, value);
  if (!breakdown) return;
  // The breakdown: a document of its own (its dimensions are not the total's), flushed at once.
  const single = metrics.singleMetric();
  for (const [dimension, dimensionValue] of Object.entries(breakdown))
    if (dimensionValue) single.addDimension(dimension, dimensionValue);
  single.addMetric(name, unit, value);
}

/** Counts a fact (`value` times): the total, and with `breakdown` the same count under it too. */
export function addCount(name: MetricName, breakdown?: Breakdown, value = 1): void {
  add(name, MetricUnit.Count, value, breakdown);
}

/** Records a duration in milliseconds (negative ones, from clock skew, as 0); as addCount for `breakdown`. */
export function addDuration(name: MetricName, milliseconds: number, breakdown?: Breakdown): void {
  add(name, MetricUnit.Milliseconds, Math.max(0, milliseconds), breakdown);
}
