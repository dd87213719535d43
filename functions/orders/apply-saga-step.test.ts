import { describe, expect, it } from 'vitest';
import { applyStep } from './apply-saga-step.ts';
import { InMemoryOrders } from './in-memory-order-repository.ts';
import { newOrder, type Order, type SagaStep } from './order.ts';

const T0 = new Date('2025-01-01T00:00:00.000Z');
const reservation = {
  amount: 2500,
  currency: 'usd',
  items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1250 }],
};
const failure = { Error: 'OutOfStockError', Cause: '{}' };

/** An order driven by the saga's steps, with what `onFinal` heard. */
async function sagaOf(steps: SagaStep[]) {
  const orders = new InMemoryOrders();
  const { order, event } = newOrder(
    { customerId: 'cust-1', items: [{ sku: 'SKU-1', quantity: 2 }] },
    'o-1',
    T0,
  );
  await orders.create(order, event);
  const final: Order[] = [];
  let clock = T0.getTime();
  const step = applyStep({
    orders,
    now: () => new Date((clock += 1000)),
    onFinal: (done) => final.push(done),
  });
  for (const command of steps) await step(command);
  return final;
}

describe('applyStep tells onFinal', () => {
  it('once, when its write completes the order, not when the step is repeated', async () => {
    const completed: SagaStep = {
      step: 'COMPLETED',
      orderId: 'o-1',
      payment: { paymentIntentId: 'pi_1', status: 'succeeded' },
    };
    const final = await sagaOf([
      { step: 'PAYMENT_PENDING', orderId: 'o-1', reservation },
      completed,
      completed,
    ]);
    expect(final).toEqual([
      expect.objectContaining({ status: 'COMPLETED', updatedAt: '2025-01-01T00:00:02.000Z' }),
    ]);
  });

  it('once, when the order is compensated, with its reason; not at the steps before', async () => {
    const compensated = { step: 'COMPENSATED', orderId: 'o-1', failure } as const;
    const final = await sagaOf([{ step: 'COMPENSATING', orderId: 'o-1', failure }, compensated, compensated]);
    expect(final).toEqual([
      expect.objectContaining({ status: 'CANCELLED', cancellationReason: 'OUT_OF_STOCK' }),
    ]);
  });
});
