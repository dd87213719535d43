import { describe, expect, it } from 'vitest';
import { CreateOrderRequestSchema, type Order, type PlaceOrderRequest } from './order.ts';
import { InMemoryOrders } from './in-memory-order-repository.ts';
import { placeOrder, requestHash } from './place-order.ts';
import type { SagaStarter } from './saga-starter.ts';

class RecordingSaga implements SagaStarter {
  readonly started: string[] = [];
  /** Set to make Step Functions unavailable. */
  failure: Error | undefined;
  async start(order: Order) {
    if (this.failure) throw this.failure;
    this.started.push(order.orderId);
  }
}

function setup() {
  const orders = new InMemoryOrders();
  const saga = new RecordingSaga();
  const deferred: string[] = [];
  let sequence = 0;
  const place = placeOrder({
    orders,
    saga,
    newOrderId: () => `order-${++sequence}`,
    now: () => new Date('2025-01-01T00:00:00.000Z'),
    onStartDeferred: (orderId) => deferred.push(orderId),
  });
  /** The order placed (or repeated); a refusal fails the test. */
  const placed = async (request: PlaceOrderRequest, key?: string) => {
    const outcome = await place(request, key);
    if (outcome.outcome === 'KEY_REUSED') throw new Error('unexpected KEY_REUSED');
    return outcome.order;
  };
  return { orders, saga, place, placed, deferred };
}

const request = (body: unknown) => CreateOrderRequestSchema.parse(body) as PlaceOrderRequest;
const body = {
  customerId: 'cust-1',
  items: [{ sku: 'SKU-1', quantity: 2 }],
  paymentMethodId: 'pm_card_visa',
};

describe('placeOrder', () => {
  it('records the order with its order.created event and starts its saga', async () => {
    const { orders, saga, placed } = setup();
    const order = await placed(request(body));
    expect(order).toMatchObject({ orderId: 'order-1', status: 'PENDING', sagaState: 'STARTED' });
    expect(await orders.get('order-1')).toEqual({ ...order, eventSequence: 1 });
    expect(orders.outbox.map((event) => [event.type, event.subject])).toEqual([['order.created', 'order-1']]);
    expect(saga.started).toEqual(['order-1']);
  });

  it('without an Idempotency-Key, every request is a new order', async () => {
    const { saga, placed } = setup();
    const first = await placed(request(body));
    const second = await placed(request(body));
    expect(second.orderId).not.toBe(first.orderId);
    expect(saga.started).toEqual([first.orderId, second.orderId]);
  });

  it('the same Idempotency-Key and body return the first order and only (re)start its saga', async () => {
    const { orders, saga, placed } = setup();
    const first = await placed(request(body), 'key-1');
    const again = await placed(request(body), 'key-1');
    expect(again).toEqual({ ...first, eventSequence: 1 });
    expect(orders.orders.size).toBe(1);
    expect(orders.outbox).toHaveLength(1);
    // Starting again is harmless (the execution is named after the order) and recovers a crash between the two.
    expect(saga.started).toEqual([first.orderId, first.orderId]);
  });

  it('the same body with its keys in another order is the same request', async () => {
    const { placed } = setup();
    const first = await placed(request(body), 'key-1');
    const reordered = request(
      JSON.parse(
        '{"paymentMethodId":"pm_card_visa","items":[{"quantity":2,"sku":"SKU-1"}],"customerId":"cust-1"}',
      ),
    );
    const again = await placed(reordered, 'key-1');
    expect(again.orderId).toBe(first.orderId);
  });

  it('returns the order as it is now, not as it was first placed', async () => {
    const { orders, placed } = setup();
    const first = await placed(request(body), 'key-1');
    await orders.save({ ...first, status: 'STOCK_RESERVED', sagaState: 'STOCK_RESERVED', version: 2 }, []);
    const again = await placed(request(body), 'key-1');
    expect(again).toMatchObject({ orderId: first.orderId, status: 'STOCK_RESERVED' });
  });

  it('the same Idempotency-Key with another body is refused (KEY_REUSED) and starts nothing', async () => {
    const { orders, saga, place, placed } = setup();
    await placed(request(body), 'key-1');
    expect(await place(request({ ...body, items: [{ sku: 'SKU-1', quantity: 3 }] }), 'key-1')).toEqual({
      outcome: 'KEY_REUSED',
    });
    expect(orders.orders.size).toBe(1);
    expect(saga.started).toHaveLength(1);
  });

  it("the same Idempotency-Key from another customer is that customer's own: a second order", async () => {
    const { orders, saga, place } = setup();
    const first = await place(request(body), 'key-1');
    const other = await place(request({ ...body, customerId: 'cust-2' }), 'key-1');
    expect(first.outcome).toBe('PLACED');
    expect(other.outcome).toBe('PLACED');
    expect(orders.orders.size).toBe(2);
    expect(saga.started).toHaveLength(2);
    // And each customer's repeat finds their own order.
    const again = await place(request({ ...body, customerId: 'cust-2' }), 'key-1');
    expect(again).toMatchObject({ outcome: 'REPEATED', order: { customerId: 'cust-2' } });
  });

  it('different Idempotency-Keys make different orders even for the same body', async () => {
    const { placed } = setup();
    const first = await placed(request(body), 'key-1');
    const second = await placed(request(body), 'key-2');
    expect(second.orderId).not.toBe(first.orderId);
  });
});

describe('requestHash', () => {
  it('ignores the order of keys', () => {
    const a = request({ customerId: 'c', items: [{ sku: 'a', quantity: 1 }], currency: 'usd' });
    const b = request(JSON.parse('{"currency":"usd","items":[{"quantity":1,"sku":"a"}],"customerId":"c"}'));
    expect(requestHash(b)).toBe(requestHash(a));
  });

  it('treats currency case as the same request, since the currency is normalised', () => {
    const lower = request({ ...body, currency: 'usd' });
    const upper = request({ ...body, currency: 'USD' });
    expect(requestHash(upper)).toBe(requestHash(lower));
  });

  it.each([
    ['customer', { ...body, customerId: 'cust-2' }],
    ['quantity', { ...body, items: [{ sku: 'SKU-1', quantity: 3 }] }],
    ['sku', { ...body, items: [{ sku: 'SKU-2', quantity: 2 }] }],
    ['payment method', { ...body, paymentMethodId: 'pm_card_chargeDeclined' }],
    ['currency', { ...body, currency: 'eur' }],
    ['absent payment method', { customerId: body.customerId, items: body.items }],
  ])('changes with the %s', (_what, other) => {
    expect(requestHash(request(other))).not.toBe(requestHash(request(body)));
  });
});

describe('when Step Functions cannot start the saga', () => {
  it('still accepts the order, with its order.created committed for the outbox to start the saga from', async () => {
    const { orders, saga, placed, deferred } = setup();
    saga.failure = new Error('ServiceUnavailable');
    const order = await placed({ customerId: 'c-1', items: [{ sku: 'mug', quantity: 1 }] });
    expect(order.status).toBe('PENDING');
    expect(deferred).toEqual([order.orderId]);
    expect(orders.outbox.map((event) => event.type)).toEqual(['order.created']);
  });
});
