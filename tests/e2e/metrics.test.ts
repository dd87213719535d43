import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalRuntime } from '../../infra/local/runtime.ts';
import { pollUntil } from '../support/poll.ts';
import { parsePrometheusText, type Exposition } from '../support/prometheus-text.ts';
import { shop, type Shop } from '../support/shop.ts';
import { startTestRuntime } from '../support/target.ts';

/*
 * GET /metrics of the local runtime: the business metrics the handlers emit as EMF, read back as
 * Prometheus series after a few orders went through the real saga: one completed, one out of stock,
 * one declined.
 */

let runtime: LocalRuntime;
let customer: Shop;

beforeAll(async () => {
  runtime = await startTestRuntime();
  customer = shop({ apiUrl: runtime.apiUrl, stripeUrl: runtime.stripeUrl });
});

afterAll(async () => {
  await runtime?.stop();
});

async function scrape(): Promise<Exposition> {
  const response = await fetch(`${runtime.apiUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheusText(await response.text());
}

/** A sample's value, 0 when the series does not exist yet. */
const valueOf = (text: Exposition, name: string, labels: Record<string, string>) =>
  text.value(name, labels) ?? 0;

describe('GET /metrics', () => {
  it('counts placed, completed and compensated orders (by reason), published events and webhooks', async () => {
    const before = await scrape();
    const sku = customer.sku();
    await customer.putProduct(sku, 2);
    const placed = await Promise.all([
      customer.placeOrder({
        customerId: `c-${randomUUID()}`,
        items: [{ sku, quantity: 1 }],
        paymentMethodId: 'pm_card_visa',
      }),
      customer.placeOrder({
        customerId: `c-${randomUUID()}`,
        items: [{ sku, quantity: 5 }],
        paymentMethodId: 'pm_card_visa',
      }),
      customer.placeOrder({
        customerId: `c-${randomUUID()}`,
        items: [{ sku, quantity: 1 }],
        paymentMethodId: 'pm_card_chargeDeclined',
      }),
    ]);
    const [completed, outOfStock, declined] = await Promise.all(
      placed.map((order) => customer.settled(order.orderId)),
    );
    expect(completed!.status).toBe('COMPLETED');
    expect(outOfStock!.cancellationReason).toBe('OUT_OF_STOCK');
    expect(declined!.cancellationReason).toBe('PAYMENT_FAILED');
    await runtime.drained();

    const moved = (text: Exposition, name: string, labels: Record<string, string>) =>
      valueOf(text, name, labels) - valueOf(before, name, labels);
    const orders = { service: 'orders' };
    // The last facts (the bridge's PubAcks, the webhooks) may land a moment after the orders settle.
    const after = await pollUntil(
      'the metrics count the orders, events and webhooks',
      scrape,
      (text) =>
        moved(text, 'order_saga_events_published_total', { service: 'bridge' }) > 0 &&
        moved(text, 'order_saga_webhook_outcomes_total', { service: 'payments' }) > 0,
    );

    expect(moved(after, 'order_saga_orders_placed_total', orders)).toBe(3);
    expect(moved(after, 'order_saga_orders_completed_total', orders)).toBe(1);
    expect(moved(after, 'order_saga_orders_compensated_total', orders)).toBe(2);
    for (const reason of ['OUT_OF_STOCK', 'PAYMENT_FAILED'])
      expect(moved(after, 'order_saga_orders_compensated_total', { ...orders, reason })).toBe(1);
    expect(
      moved(after, 'order_saga_stock_refusals_total', { service: 'inventory', reason: 'OUT_OF_STOCK' }),
    ).toBe(1);
    expect(moved(after, 'order_saga_saga_duration_seconds_count', { ...orders, outcome: 'COMPLETED' })).toBe(
      1,
    );
    expect(moved(after, 'order_saga_saga_duration_seconds_count', { ...orders, outcome: 'CANCELLED' })).toBe(
      2,
    );
    expect(
      moved(after, 'order_saga_payment_wait_seconds_count', { service: 'payments' }),
    ).toBeGreaterThanOrEqual(2);
    expect(after.types.get('order_saga_bridge_lag_seconds')).toBe('histogram');
    const results = after.samples.filter(
      (sample) => sample.name === 'order_saga_webhook_outcomes_total' && sample.labels.result !== undefined,
    );
    expect(results.map((sample) => sample.labels.result)).not.toContain('failed');
  });

  it('is not a route of the stack: any other method is not found', async () => {
    const response = await fetch(`${runtime.apiUrl}/metrics`, { method: 'POST' });
    expect(response.status).toBe(404);
  });
});
