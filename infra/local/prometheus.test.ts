import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../tests/support/prometheus-text.ts';
import {
  InvalidEmfError,
  PROMETHEUS_CONTENT_TYPE,
  metricsRoute,
  prometheusRegistry,
  snakeCase,
} from './prometheus.ts';

/** An EMF document as Powertools serializes it (the line it would print). */
function emf(
  build: (metrics: Metrics) => void,
  options: { serviceName?: string; namespace?: string } = {},
): string {
  const metrics = new Metrics({
    namespace: options.namespace ?? 'OrderSaga',
    serviceName: options.serviceName ?? 'orders',
  });
  build(metrics);
  return JSON.stringify(metrics.serializeMetrics());
}

describe('the EMF → Prometheus registry', () => {
  it('turns counts into counters named after namespace and metric, labelled by each dimension set', () => {
    const registry = prometheusRegistry();
    registry.record(emf((m) => m.addMetric('OrdersPlaced', MetricUnit.Count, 1)));
    registry.record(emf((m) => m.addMetric('OrdersPlaced', MetricUnit.Count, 2)));
    registry.record(
      emf((m) => m.addMetric('StockRefusals', MetricUnit.Count, 1), { serviceName: 'inventory' }),
    );

    const text = parsePrometheusText(registry.render());
    expect(text.types.get('order_saga_orders_placed_total')).toBe('counter');
    expect(text.value('order_saga_orders_placed_total', { service: 'orders' })).toBe(3);
    expect(text.value('order_saga_stock_refusals_total', { service: 'inventory' })).toBe(1);
  });

  it('keeps a total and its breakdown as series of one family, told apart by the label', () => {
    const registry = prometheusRegistry();
    for (const reason of ['OUT_OF_STOCK', 'OUT_OF_STOCK', 'PAYMENT_FAILED']) {
      registry.record(emf((m) => m.addMetric('OrdersCompensated', MetricUnit.Count, 1)));
      registry.record(
        emf((m) => m.addDimension('reason', reason).addMetric('OrdersCompensated', MetricUnit.Count, 1)),
      );
    }

    const text = parsePrometheusText(registry.render());
    const name = 'order_saga_orders_compensated_total';
    expect(text.value(name, { service: 'orders' })).toBe(3);
    expect(text.value(name, { service: 'orders', reason: 'OUT_OF_STOCK' })).toBe(2);
    expect(text.value(name, { service: 'orders', reason: 'PAYMENT_FAILED' })).toBe(1);
  });

  it('turns milliseconds into a histogram in seconds, every value of a document an observation', () => {
    const registry = prometheusRegistry({ buckets: [0.1, 1, 10] });
    registry.record(
      emf(
        (m) => {
          m.addMetric('BridgeLag', MetricUnit.Milliseconds, 50);
          m.addMetric('BridgeLag', MetricUnit.Milliseconds, 2_000);
        },
        { serviceName: 'bridge' },
      ),
    );
    registry.record(
      emf((m) => m.addMetric('BridgeLag', MetricUnit.Milliseconds, 900), { serviceName: 'bridge' }),
    );

    const rendered = registry.render();
    const text = parsePrometheusText(rendered);
    const name = 'order_saga_bridge_lag_seconds';
    expect(text.types.get(name)).toBe('histogram');
    const bucket = (le: string) => text.value(`${name}_bucket`, { service: 'bridge', le });
    expect([bucket('0.1'), bucket('1'), bucket('10'), bucket('+Inf')]).toEqual([1, 2, 3, 3]);
    expect(text.value(`${name}_count`, { service: 'bridge' })).toBe(3);
    expect(text.value(`${name}_sum`, { service: 'bridge' })).toBeCloseTo(2.95);
    expect(rendered).toContain(`# HELP ${name} OrderSaga BridgeLag (EMF, unit Milliseconds)\n`);
  });

  it('reads every directive and metric of a document, and other units by their own name', () => {
    const registry = prometheusRegistry({ buckets: [1024] });
    const document = {
      _aws: {
        Timestamp: Date.now(),
        CloudWatchMetrics: [
          {
            Namespace: 'OrderSaga',
            Dimensions: [['service']],
            Metrics: [{ Name: 'EventsPublished', Unit: 'Count' }],
          },
          { Namespace: 'Other', Dimensions: [[]], Metrics: [{ Name: 'PayloadSize', Unit: 'Bytes' }] },
        ],
      },
      service: 'bridge',
      EventsPublished: [1, 1, 1],
      PayloadSize: 512,
    };
    registry.record(JSON.stringify(document));

    const text = parsePrometheusText(registry.render());
    expect(text.value('order_saga_events_published_total', { service: 'bridge' })).toBe(3);
    expect(text.value('other_payload_size_bytes_count')).toBe(1);
    expect(text.value('other_payload_size_bytes_bucket', { le: '1024' })).toBe(1);
  });

  it('escapes label values and renders nothing before the first document', () => {
    const registry = prometheusRegistry();
    expect(registry.render()).toBe('');
    registry.record(
      emf(
        (m) =>
          m.addDimension('result', 'a "quoted"\\ value\n').addMetric('WebhookOutcomes', MetricUnit.Count, 1),
        {
          serviceName: 'payments',
        },
      ),
    );
    const rendered = registry.render();
    expect(rendered).toContain('result="a \\"quoted\\"\\\\ value\\n"');
    expect(
      parsePrometheusText(rendered).value('order_saga_webhook_outcomes_total', {
        service: 'payments',
        result: 'a "quoted"\\ value\n',
      }),
    ).toBe(1);
  });

  it.each([
    ['not JSON', '{"_aws":'],
    ['not EMF', JSON.stringify({ message: 'a log line' })],
    [
      'a dimension without its value',
      JSON.stringify({
        _aws: {
          Timestamp: 1,
          CloudWatchMetrics: [{ Namespace: 'N', Dimensions: [['service']], Metrics: [{ Name: 'M' }] }],
        },
        M: 1,
      }),
    ],
    [
      'a metric without a value',
      JSON.stringify({
        _aws: {
          Timestamp: 1,
          CloudWatchMetrics: [{ Namespace: 'N', Dimensions: [], Metrics: [{ Name: 'M' }] }],
        },
      }),
    ],
  ])('refuses %s', (_, line) => {
    expect(() => prometheusRegistry().record(line)).toThrow(InvalidEmfError);
  });

  it('names metrics and labels in snake case', () => {
    expect(snakeCase('OrderSaga')).toBe('order_saga');
    expect(snakeCase('HTTPErrors')).toBe('http_errors');
    expect(snakeCase('p99.latency-ms')).toBe('p99_latency_ms');
    expect(snakeCase('5xx')).toBe('_5xx');
  });

  it('serves the registry as GET /metrics in the text format', async () => {
    const registry = prometheusRegistry();
    registry.record(emf((m) => m.addMetric('OrdersPlaced', MetricUnit.Count, 1)));
    const route = metricsRoute(registry);
    expect(route.path).toBe('/metrics');
    const { contentType, body } = await route.respond();
    expect(contentType).toBe(PROMETHEUS_CONTENT_TYPE);
    expect(body).toContain('order_saga_orders_placed_total{service="orders"} 1\n');
  });
});
