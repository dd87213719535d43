import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shop, type OrderView, type Shop } from '../support/shop.ts';
import { startTarget, type Target } from '../support/target.ts';

/*
 * Why an order ended, as its customer reads it: the whole saga through the local runtime (or a
 * deployed stack with E2E_API_URL), so each detail has crossed Lambda's error serialization and
 * Step Functions' Cause before the order recorded it.
 */

type Ended = OrderView & {
  cancellationDetail?: { declineCode?: string; skus?: string[]; message?: string };
  cancelRequestedAt?: string;
};

let target: Target;
let store: Shop;

beforeAll(async () => {
  target = await startTarget();
  store = shop(target);
});

afterAll(async () => {
  await target?.stop();
});

const ended = async (orderId: string) => (await store.settled(orderId)) as Ended;

describe('a cancelled order says why it ended', () => {
  it("a declined card: PAYMENT_FAILED with the issuer's decline code and Stripe's sentence", async () => {
    const sku = store.sku();
    await store.putProduct(sku, 5);
    const { orderId } = await store.placeOrder({
      customerId: 'cust-declined',
      items: [{ sku, quantity: 1 }],
      paymentMethodId: 'pm_card_chargeDeclined',
    });
    const order = await ended(orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', cancellationReason: 'PAYMENT_FAILED' });
    expect(order.cancellationDetail).toEqual({ declineCode: 'generic_decline', message: expect.any(String) });
    expect(order.cancellationDetail?.message).not.toMatch(/order|pi_|Error/);
    expect(order).not.toHaveProperty('cancelRequestedAt');
  });

  it('more than the stock: OUT_OF_STOCK with the SKU that was short, not the one that was not', async () => {
    const [short, plenty] = [store.sku(), store.sku()];
    await store.putProduct(short, 2);
    await store.putProduct(plenty, 50);
    const { orderId } = await store.placeOrder({
      customerId: 'cust-short',
      items: [
        { sku: plenty, quantity: 1 },
        { sku: short, quantity: 3 },
      ],
      paymentMethodId: 'pm_card_visa',
    });
    const order = await ended(orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', cancellationReason: 'OUT_OF_STOCK' });
    expect(order.cancellationDetail).toEqual({ skus: [short], message: `Not enough stock: ${short}` });
  });

  it('a SKU the catalogue does not have: UNKNOWN_PRODUCT with that SKU', async () => {
    const unknown = store.sku();
    const { orderId } = await store.placeOrder({
      customerId: 'cust-unknown',
      items: [{ sku: unknown, quantity: 1 }],
    });
    const order = await ended(orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', cancellationReason: 'UNKNOWN_PRODUCT' });
    expect(order.cancellationDetail).toMatchObject({ skus: [unknown] });
  });

  it("an amount Stripe will not charge (a free product): PAYMENT_FAILED with Stripe's code", async () => {
    const free = store.sku();
    await store.putProduct(free, 5, 0);
    const { orderId } = await store.placeOrder({
      customerId: 'cust-free',
      items: [{ sku: free, quantity: 1 }],
      paymentMethodId: 'pm_card_visa',
    });
    const order = await ended(orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', cancellationReason: 'PAYMENT_FAILED' });
    expect(order.cancellationDetail).toMatchObject({ declineCode: 'amount_too_small' });
  });

  it("the customer's cancel: CUSTOMER_CANCELLED, showing when it was asked for", async () => {
    const sku = store.sku();
    await store.putProduct(sku, 5);
    // No payment method: the saga waits for the customer to pay, and the cancel arrives meanwhile.
    const { orderId } = await store.placeOrder({ customerId: 'cust-cancel', items: [{ sku, quantity: 1 }] });
    await store.waitFor(orderId, (order) => order.sagaState === 'PAYMENT_PENDING');
    const before = Date.now();
    const answer = await store.cancel(orderId);
    expect(answer.status).toBe(202);
    const asked = (await answer.json()) as Ended;
    expect(Date.parse(asked.cancelRequestedAt!)).toBeGreaterThanOrEqual(before - 1000);

    const order = await ended(orderId);
    expect(order).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'CUSTOMER_CANCELLED',
      cancelRequestedAt: asked.cancelRequestedAt,
    });
    expect(await store.getProduct(sku)).toMatchObject({ available: 5, reserved: 0 });
  });
});
