import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pollUntil } from '../support/poll.ts';
import { shop } from '../support/shop.ts';
import { startTarget, type Target } from '../support/target.ts';

/*
 * The webhook holds the signing secret and no API key (stacks/payments-service.ts); the refunds it
 * must make go through the refund function, which holds the key. Driven end to end: the Stripe
 * emulator signs and sends the webhook, the local runtime runs the functions with the secrets the
 * stack grants each.
 */

let target: Target;
let customer: ReturnType<typeof shop>;

beforeAll(async () => {
  target = await startTarget();
  customer = shop(target);
});

afterAll(async () => {
  await target?.stop();
});

describe('refunds the webhook asks for', () => {
  it('a second PaymentIntent that took money for a paid order is refunded in full; the order keeps its one charge', async () => {
    const sku = customer.sku();
    await customer.putProduct(sku, 5);
    const placed = await customer.placeOrder({
      customerId: `c-${randomUUID()}`,
      items: [{ sku, quantity: 1 }],
    });
    await customer.payInBrowser(placed.orderId);
    const completed = await customer.settled(placed.orderId);
    expect(completed.status).toBe('COMPLETED');

    // Someone charges the customer again for the same order, outside the saga.
    const stray = await customer.stripe.paymentIntents.create({
      amount: 1250,
      currency: 'usd',
      metadata: { orderId: placed.orderId },
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    expect(stray.status).toBe('succeeded');

    const money = await pollUntil(
      `the stray charge of ${placed.orderId} is refunded`,
      () => customer.moneyAtStripe(placed.orderId),
      (held) => held.intents.find((intent) => intent.id === stray.id)?.refunded === 1250,
    );
    expect(money.kept).toBe(1250);
    expect(money.intents).toHaveLength(2);
    expect((await customer.getOrder(placed.orderId)).status).toBe('COMPLETED');
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
