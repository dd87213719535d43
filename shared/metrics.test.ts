import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { Metric, METRICS_NAMESPACE } from './metric-names.ts';
import { addCount, addDuration, metrics, withMetricsScope, type MetricsScope } from './metrics.ts';

type Emf = Record<string, unknown> & {
  _aws: { CloudWatchMetrics: Array<{ Namespace: string; Dimensions: string[][] }> };
};

/** Runs `run` as one invocation in a scope, flushing at its end as `logMetrics` does; its EMF documents. */
async function flushed(scope: Omit<MetricsScope, 'write'>, run: () => Promise<void> | void): Promise<Emf[]> {
  const written: string[] = [];
  await withMetricsScope({ ...scope, write: (emf) => written.push(emf) }, async () => {
    await run();
    metrics.publishStoredMetrics();
  });
  return written.map((line) => JSON.parse(line) as Emf);
}

describe('business metrics', () => {
  it('emits a count twice: the total with the service only, and the breakdown as a document of its own', async () => {
    const documents = await flushed({ serviceName: 'orders' }, () =>
      addCount(Metric.OrdersCompensated, { reason: 'OUT_OF_STOCK' }),
    );
    expect(documents).toHaveLength(2);
    const [breakdown, total] = documents;
    expect(breakdown).toMatchObject({ service: 'orders', reason: 'OUT_OF_STOCK', OrdersCompensated: 1 });
    expect(breakdown!._aws.CloudWatchMetrics[0]).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      Dimensions: [['service', 'reason']],
    });
    expect(total).toMatchObject({ service: 'orders', OrdersCompensated: 1 });
    expect(total).not.toHaveProperty('reason');
    expect(total!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['service']]);
  });

  it('buffers the totals of one invocation into one document, durations in milliseconds, never below 0', async () => {
    const [document, ...more] = await flushed({ serviceName: 'bridge', namespace: 'Elsewhere' }, () => {
      addCount(Metric.EventsPublished);
      addCount(Metric.EventsPublished);
      addDuration(Metric.BridgeLag, 120);
      addDuration(Metric.BridgeLag, -5);
    });
    expect(more).toEqual([]);
    expect(document).toMatchObject({ service: 'bridge', EventsPublished: [1, 1], BridgeLag: [120, 0] });
    expect(document!._aws.CloudWatchMetrics[0]).toMatchObject({
      Namespace: 'Elsewhere',
      Metrics: [
        { Name: 'EventsPublished', Unit: 'Count' },
        { Name: 'BridgeLag', Unit: 'Milliseconds' },
      ],
    });
  });

  it('writes nothing for an invocation that counted nothing', async () => {
    expect(await flushed({ serviceName: 'orders' }, () => {})).toEqual([]);
  });

  it('keeps interleaved invocations apart: each flush carries its own service and only its own metrics', async () => {
    const [orders, payments] = await Promise.all([
      flushed({ serviceName: 'orders' }, async () => {
        addCount(Metric.OrdersPlaced);
        await sleep(30); // the other invocation counts and flushes meanwhile
        addCount(Metric.OrdersPlaced);
      }),
      flushed({ serviceName: 'payments' }, async () => {
        await sleep(5);
        addCount(Metric.WebhookFailures);
      }),
    ]);
    expect(orders).toEqual([expect.objectContaining({ service: 'orders', OrdersPlaced: [1, 1] })]);
    expect(orders[0]).not.toHaveProperty('WebhookFailures');
    expect(payments).toEqual([expect.objectContaining({ service: 'payments', WebhookFailures: 1 })]);
    expect(payments[0]).not.toHaveProperty('OrdersPlaced');
  });
});
