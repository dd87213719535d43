import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { faultInjector, type FaultContext, type FaultName } from '../../infra/local/faults.ts';
import type { LocalRuntime } from '../../infra/local/runtime.ts';
import { pollUntil } from '../support/poll.ts';
import { shop } from '../support/shop.ts';
import { startTestRuntime } from '../support/target.ts';

/*
 * The webhook holds the signing secret and no API key (stacks/payments-service.ts); the refunds it
 * must make go through the refund function, which holds the key. Driven end to end: the Stripe
 * emulator signs and sends the webhook, the local runtime runs the functions with the secrets the
 * stack grants each, with Stripe failing on the refund as LOCAL_FAULTS injects it.
 */

let target: LocalRuntime;
let customer: ReturnType<typeof shop>;
/** Which faults apply now: each decides for one call (a Stripe request), in order. */
let only: ((name: FaultName, context: FaultContext) => boolean) | undefined;
const faults = faultInjector({
  spec: { 'stripe.error': 1, 'stripe.lost-response': 1 },
  seed: 20261202,
  log: () => {},
  filter: (name, context) => only?.(name, context) ?? false,
});

beforeAll(async () => {
  target = await startTestRuntime({ faults });
  customer = shop(target);
});

afterEach(() => {
  only = undefined;
});

afterAll(async () => {
  await target?.stop();
});

/** A completed order, then a second PaymentIntent that charges its customer again, outside the saga. */
async function strayChargeOnAPaidOrder() {
  const sku = customer.sku();
  await customer.putProduct(sku, 5);
  const placed = await customer.placeOrder({
    customerId: `c-${randomUUID()}`,
    items: [{ sku, quantity: 1 }],
  });
  await customer.payInBrowser(placed.orderId);
  expect((await customer.settled(placed.orderId)).status).toBe('COMPLETED');
  const stray = await customer.stripe.paymentIntents.create({
    amount: 1250,
    currency: 'usd',
    metadata: { orderId: placed.orderId },
    payment_method: 'pm_card_visa',
    confirm: true,
  });
  return { orderId: placed.orderId, stray };
}

/** Waits until the stray intent is refunded; the money Stripe holds for the order then. */
const refunded = (orderId: string, strayId: string) =>
  pollUntil(
    `the stray charge of ${orderId} is refunded`,
    () => customer.moneyAtStripe(orderId),
    (held) => (held.intents.find((intent) => intent.id === strayId)?.refunded ?? 0) > 0,
  );

/** Fails the first `count` refund requests to Stripe with `fault`, then lets them through. */
function failRefunds(fault: FaultName, count: number) {
  let left = count;
  only = (name, context) => {
    if (name !== fault || context.request !== 'POST /v1/refunds' || left === 0) return false;
    left -= 1;
    return true;
  };
  return { injected: () => count - left };
}

describe('refunds the webhook asks for', () => {
  it.each([
    ['answers 500 twice (the webhook answers 500, Stripe delivers again)', 'stripe.error' as const, 2],
    // The refund function reads back the refund its lost answer made: no second refund request.
    ['refunds but loses the answer', 'stripe.lost-response' as const, 1],
  ])('a stray charge is refunded exactly once when Stripe %s', async (_case, fault, times) => {
    const failing = failRefunds(fault, times);
    const { orderId, stray } = await strayChargeOnAPaidOrder();
    const money = await refunded(orderId, stray.id);
    expect(failing.injected()).toBe(times);
    expect(money.intents.find((intent) => intent.id === stray.id)?.refunded).toBe(1250);
    expect(money.kept).toBe(1250);
    const refunds = await customer.stripe.refunds.list({ payment_intent: stray.id });
    expect(refunds.data.filter((refund) => refund.status === 'succeeded')).toHaveLength(1);
    expect((await customer.getOrder(orderId)).status).toBe('COMPLETED');
  });

  it('a second PaymentIntent that took money for a paid order is refunded in full; the order keeps its one charge', async () => {
    const { orderId, stray } = await strayChargeOnAPaidOrder();
    expect(stray.status).toBe('succeeded');
    const money = await refunded(orderId, stray.id);
    expect(money.intents.find((intent) => intent.id === stray.id)?.refunded).toBe(1250);
    expect(money.kept).toBe(1250);
    expect(money.intents).toHaveLength(2);
    expect((await customer.getOrder(orderId)).status).toBe('COMPLETED');
  });

  it('answers an unsigned webhook 400 before anything is read', async () => {
    const response = await fetch(`${target.apiUrl}/payments/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': 't=1,v1=00' },
      body: '{}',
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({
      error: { code: 'INVALID_SIGNATURE', message: 'The Stripe-Signature timestamp is more than 300 s old.' },
    });
  });
});
