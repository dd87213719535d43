import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultInjector } from '../../infra/local/faults.ts';
import type { LocalRuntime } from '../../infra/local/runtime.ts';
import { CHAOS_FAULTS, runChaos } from '../support/chaos.ts';
import { shop } from '../support/shop.ts';
import { startTestRuntime } from '../support/target.ts';

/*
 * Every fault kind at once, at rates that make each happen many times, under orders of every payment
 * method and customers cancelling: afterwards every order is final, reconcile (the read-only oracle
 * of npm run reconcile) finds nothing, and every event reached NATS exactly once. The seed is fixed,
 * so a failure replays (LOCAL_FAULTS_SEED).
 */

let runtime: LocalRuntime;
const SEED = 424242;

beforeAll(async () => {
  runtime = await startTestRuntime({
    config: { PAYMENT_TIMEOUT_SECONDS: '6' },
    faults: faultInjector({ spec: { ...CHAOS_FAULTS }, seed: SEED, log: () => {} }),
    retryDelayMs: 20,
  });
});

afterAll(async () => {
  await runtime?.stop();
});

describe('chaos: every fault kind at once', () => {
  it('70 orders of every kind end final, with money, stock and events as reconcile expects', async () => {
    const result = await runChaos(runtime, { orders: 70, seed: SEED });

    expect(result.orders).toHaveLength(70);
    expect(
      result.orders
        .filter((order) => !order.allowed)
        .map((order) => [order.kind, order.final.status, order.final.cancellationReason]),
    ).toEqual([]);
    expect(result.discrepancies).toEqual([]);
    expect(result.events.missing).toEqual([]);
    expect(result.events.duplicated).toEqual([]);
    expect(result.events.written).toBeGreaterThan(70 * 3);
    // Every kind of fault was injected, many times.
    for (const [name, count] of Object.entries(result.faults)) expect(count, name).toBeGreaterThan(3);
    // The customer's cancel during the wait ends it: most such orders are CUSTOMER_CANCELLED, not
    // left to the payment timeout (a cancel that comes just as the wait times out may be either).
    const waiting = result.orders.filter((o) => o.kind === 'cancel-while-waiting');
    const prompt = waiting.filter((o) => o.final.cancellationReason === 'CUSTOMER_CANCELLED');
    expect(prompt.length).toBeGreaterThan(waiting.length / 2);
    // A cancel racing a card: its answer says which side won.
    for (const order of result.orders.filter((o) => o.kind === 'cancel-racing-card')) {
      expect(order.cancelAnswer).toBe(order.final.status === 'COMPLETED' ? 409 : 202);
    }
  }, 300_000);

  it('36 buyers racing for 12 units under the same faults: exactly 12 sales, none cancelled by a fault', async () => {
    runtime.faults.set({ ...CHAOS_FAULTS });
    const store = shop(runtime);
    const sku = store.sku();
    await store.putProduct(sku, 12);
    const placed = await Promise.all(
      Array.from({ length: 36 }, (_, index) =>
        store.placeOrder({
          customerId: `racer-${index}`,
          items: [{ sku, quantity: 1 }],
          paymentMethodId: 'pm_card_visa',
        }),
      ),
    );
    const finals = await Promise.all(placed.map((order) => store.settled(order.orderId, 120_000)));
    const reasons = finals.map((order) => order.cancellationReason ?? order.status);
    expect(reasons.filter((reason) => reason === 'COMPLETED')).toHaveLength(12);
    expect(reasons.filter((reason) => reason === 'OUT_OF_STOCK')).toHaveLength(24);
    runtime.faults.set({});
    expect(await store.getProduct(sku)).toMatchObject({ available: 0, reserved: 0 });
  }, 300_000);
});
