import { describe, expect, it } from 'vitest';
import { parseEvent } from '../../events/envelope.ts';
import { sequenceEvents } from '../../shared/outbox/write.ts';
import { ValidationError } from '../../shared/errors.ts';
import type { Caller } from '../../shared/caller.ts';
import { ReservationExpiredError, StockUnavailableError } from '../inventory/stock.ts';
import { PaymentAmountRefusedError, PaymentClosedError } from '../payments/payment.ts';
import {
  applySagaStep,
  cancellationDetailOf,
  CreateOrderRequestSchema,
  CustomerCancelledError,
  customerOf,
  InvalidTransitionError,
  isVisibleTo,
  requestCancellation,
  mergeLines,
  newOrder,
  orderView,
  recordHonouredCancellation,
  type CreateOrderRequest,
  type Order,
  type SagaStep,
} from './order.ts';

const T0 = new Date('2025-01-01T00:00:00.000Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

const validRequest = { customerId: 'cust-1', items: [{ sku: 'SKU-1', quantity: 2 }] };
const backOffice: Caller = { kind: 'backOffice', via: 'no-authorizer' };
const customer = (customerId: string): Caller => ({ kind: 'customer', customerId });

function items(count: number) {
  return Array.from({ length: count }, (_, i) => ({ sku: `sku-${i}`, quantity: 1 }));
}

function placed(request: Partial<CreateOrderRequest> = {}): Order {
  return newOrder({ ...validRequest, paymentMethodId: 'pm_card_visa', ...request }, 'order-1', T0).order;
}

const reserved: SagaStep = {
  step: 'STOCK_RESERVED',
  orderId: 'order-1',
  reservation: { amount: 2400, currency: 'usd', items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1200 }] },
};
const paymentPending: SagaStep = { step: 'PAYMENT_PENDING', orderId: 'order-1' };
const completed: SagaStep = {
  step: 'COMPLETED',
  orderId: 'order-1',
  payment: { paymentIntentId: 'pi_123', status: 'succeeded' },
};
const compensating = (error: string): SagaStep => ({
  step: 'COMPENSATING',
  orderId: 'order-1',
  failure: { Error: error, Cause: 'because' },
});
const compensated = (error: string): SagaStep => ({
  step: 'COMPENSATED',
  orderId: 'order-1',
  failure: { Error: error, Cause: 'because' },
});

/** Applies steps in order, each a second apart, failing the test if one does not change the order. */
function run(order: Order, ...steps: SagaStep[]) {
  let current = order;
  const events = [];
  for (const [index, step] of steps.entries()) {
    const outcome = applySagaStep(current, step, at(index + 1));
    if (!outcome.changed) throw new Error(`step ${step.step} did not change the order`);
    current = outcome.order;
    events.push(...outcome.events);
  }
  return { order: current, events };
}

describe('CreateOrderRequestSchema', () => {
  it('accepts a minimal order and leaves optional fields absent', () => {
    expect(CreateOrderRequestSchema.parse(validRequest)).toEqual(validRequest);
  });

  it('rejects unknown fields at the top level and in items', () => {
    expect(CreateOrderRequestSchema.safeParse({ ...validRequest, discount: 10 }).success).toBe(false);
    expect(
      CreateOrderRequestSchema.safeParse({
        ...validRequest,
        items: [{ sku: 'SKU-1', quantity: 1, price: 1 }],
      }).success,
    ).toBe(false);
  });

  it('accepts 1 to 50 items and rejects none or 51', () => {
    expect(CreateOrderRequestSchema.safeParse({ ...validRequest, items: items(1) }).success).toBe(true);
    expect(CreateOrderRequestSchema.safeParse({ ...validRequest, items: items(50) }).success).toBe(true);
    expect(CreateOrderRequestSchema.safeParse({ ...validRequest, items: [] }).success).toBe(false);
    expect(CreateOrderRequestSchema.safeParse({ ...validRequest, items: items(51) }).success).toBe(false);
  });

  it.each([1, 999])('accepts quantity %d', (quantity) => {
    expect(
      CreateOrderRequestSchema.safeParse({ ...validRequest, items: [{ sku: 'a', quantity }] }).success,
    ).toBe(true);
  });

  it.each([0, -1, 1000, 1.5, '2', null])('rejects quantity %j', (quantity) => {
    expect(
      CreateOrderRequestSchema.safeParse({ ...validRequest, items: [{ sku: 'a', quantity }] }).success,
    ).toBe(false);
  });

  it.each(['A', 'abc.DEF_1-2', 'x'.repeat(64)])('accepts sku %j', (sku) => {
    expect(
      CreateOrderRequestSchema.safeParse({ ...validRequest, items: [{ sku, quantity: 1 }] }).success,
    ).toBe(true);
  });

  it.each(['', 'x'.repeat(65), 'has space', 'slash/sku', 'ümlaut', 'a#b'])('rejects sku %j', (sku) => {
    expect(
      CreateOrderRequestSchema.safeParse({ ...validRequest, items: [{ sku, quantity: 1 }] }).success,
    ).toBe(false);
  });

  it('takes a customerId of 1 to 64 characters, or none (the token names the customer)', () => {
    expect(CreateOrderRequestSchema.safeParse({ ...validRequest, customerId: 'c' }).success).toBe(true);
    expect(CreateOrderRequestSchema.safeParse({ ...validRequest, customerId: 'c'.repeat(64) }).success).toBe(
      true,
    );
    expect(CreateOrderRequestSchema.safeParse({ ...validRequest, customerId: '' }).success).toBe(false);
    expect(CreateOrderRequestSchema.safeParse({ ...validRequest, customerId: 'c'.repeat(65) }).success).toBe(
      false,
    );
    const withoutCustomer: Record<string, unknown> = { ...validRequest };
    delete withoutCustomer.customerId;
    expect(CreateOrderRequestSchema.safeParse(withoutCustomer).success).toBe(true);
  });

  it('normalises the currency to lower case and rejects non-ISO codes', () => {
    expect(CreateOrderRequestSchema.parse({ ...validRequest, currency: 'EUR' }).currency).toBe('eur');
    expect(CreateOrderRequestSchema.parse({ ...validRequest, currency: 'uSd' }).currency).toBe('usd');
    for (const currency of ['eu', 'euro', '12a', '']) {
      expect(CreateOrderRequestSchema.safeParse({ ...validRequest, currency }).success).toBe(false);
    }
  });
});

describe('mergeLines', () => {
  it('merges duplicate SKUs into one line, keeping first-seen order', () => {
    expect(
      mergeLines([
        { sku: 'a', quantity: 2 },
        { sku: 'b', quantity: 1 },
        { sku: 'a', quantity: 3 },
      ]),
    ).toEqual([
      { sku: 'a', quantity: 5 },
      { sku: 'b', quantity: 1 },
    ]);
  });

  it('allows a merged line of exactly 999', () => {
    expect(
      mergeLines([
        { sku: 'a', quantity: 500 },
        { sku: 'a', quantity: 499 },
      ]),
    ).toEqual([{ sku: 'a', quantity: 999 }]);
  });

  it('rejects a merged line over 999 with a ValidationError naming the sku', () => {
    const attempt = () =>
      mergeLines([
        { sku: 'a', quantity: 500 },
        { sku: 'a', quantity: 500 },
      ]);
    expect(attempt).toThrow(ValidationError);
    try {
      attempt();
    } catch (error) {
      expect(error).toMatchObject({ code: 'VALIDATION_FAILED', details: [{ path: 'items' }] });
      expect((error as ValidationError).details[0]?.message).toContain('a');
    }
  });
});

describe('newOrder', () => {
  it('starts PENDING/STARTED with one history entry and the default currency', () => {
    const { order } = newOrder(validRequest, 'order-1', T0);
    expect(order).toMatchObject({
      orderId: 'order-1',
      customerId: 'cust-1',
      items: [{ sku: 'SKU-1', quantity: 2 }],
      currency: 'usd',
      status: 'PENDING',
      sagaState: 'STARTED',
      history: [{ sagaState: 'STARTED', at: T0.toISOString() }],
      createdAt: T0.toISOString(),
      updatedAt: T0.toISOString(),
    });
    expect(order.amount).toBeUndefined();
    expect(order.paymentMethodId).toBeUndefined();
  });

  it('keeps the payment method and the requested currency', () => {
    const { order } = newOrder(
      { ...validRequest, paymentMethodId: 'pm_card_visa', currency: 'eur' },
      'o',
      T0,
    );
    expect(order.paymentMethodId).toBe('pm_card_visa');
    expect(order.currency).toBe('eur');
  });

  it('stores merged lines, never double-counting a repeated sku', () => {
    const { order, event } = newOrder(
      {
        customerId: 'c',
        items: [
          { sku: 'a', quantity: 1 },
          { sku: 'a', quantity: 2 },
        ],
      },
      'o',
      T0,
    );
    expect(order.items).toEqual([{ sku: 'a', quantity: 3 }]);
    expect(event.data).toMatchObject({ items: [{ sku: 'a', quantity: 3 }] });
  });

  it('emits a valid order.created event about the order', () => {
    const [event] = sequenceEvents([newOrder({ ...validRequest, currency: 'gbp' }, 'order-1', T0).event], 0);
    expect(parseEvent(JSON.parse(JSON.stringify(event)))).toEqual(event);
    expect(event).toMatchObject({
      type: 'order.created',
      subject: 'order-1',
      time: T0.toISOString(),
      data: {
        orderId: 'order-1',
        customerId: 'cust-1',
        items: [{ sku: 'SKU-1', quantity: 2 }],
        currency: 'gbp',
        status: 'PENDING',
        sagaState: 'STARTED',
      },
    });
  });
});

describe('applySagaStep', () => {
  it('walks the happy path to COMPLETED, recording each step', () => {
    const start = placed();
    const afterReserve = applySagaStep(start, reserved, at(1));
    expect(afterReserve.changed).toBe(true);
    expect(afterReserve.order).toMatchObject({
      status: 'STOCK_RESERVED',
      sagaState: 'STOCK_RESERVED',
      amount: 2400,
      currency: 'usd',
      items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1200 }],
      updatedAt: at(1).toISOString(),
      version: start.version + 1,
    });

    const afterPending = applySagaStep(afterReserve.order, paymentPending, at(2));
    expect(afterPending.order).toMatchObject({ status: 'PAYMENT_PENDING', sagaState: 'PAYMENT_PENDING' });

    const afterComplete = applySagaStep(afterPending.order, completed, at(3));
    expect(afterComplete.order).toMatchObject({
      status: 'COMPLETED',
      sagaState: 'COMPLETED',
      payment: { paymentIntentId: 'pi_123', status: 'succeeded' },
      version: start.version + 3,
    });
    expect(afterComplete.order.history.map((entry) => entry.sagaState)).toEqual([
      'STARTED',
      'STOCK_RESERVED',
      'PAYMENT_PENDING',
      'COMPLETED',
    ]);
    expect(afterComplete.order.cancellationReason).toBeUndefined();
  });

  it('does not modify the order it was given', () => {
    const start = placed();
    const snapshot = structuredClone(start);
    applySagaStep(start, reserved, at(1));
    expect(start).toEqual(snapshot);
  });

  it.each([
    ['STOCK_RESERVED', [reserved]],
    ['PAYMENT_PENDING', [reserved, paymentPending]],
    ['COMPLETED', [reserved, paymentPending, completed]],
    ['COMPENSATING', [compensating('OUT_OF_STOCK')]],
    ['COMPENSATED', [compensating('OUT_OF_STOCK'), compensated('OUT_OF_STOCK')]],
  ] as const)('repeating the %s step is a no-op', (_state, steps) => {
    const { order } = run(placed(), ...steps);
    const last = steps[steps.length - 1]!;
    const repeat = applySagaStep(order, last, at(99));
    expect(repeat).toEqual({ changed: false, order });
  });

  it.each([
    ['STARTED', 'PAYMENT_PENDING', [] as SagaStep[], paymentPending],
    ['STARTED', 'COMPLETED', [], completed],
    ['STARTED', 'COMPENSATED', [], compensated('OUT_OF_STOCK')],
    ['STOCK_RESERVED', 'COMPLETED', [reserved], completed],
    ['PAYMENT_PENDING', 'STOCK_RESERVED', [reserved, paymentPending], reserved],
    ['COMPLETED', 'COMPENSATING', [reserved, paymentPending, completed], compensating('PAYMENT_FAILED')],
    ['COMPENSATING', 'COMPLETED', [compensating('PAYMENT_FAILED')], completed],
    ['COMPENSATING', 'STOCK_RESERVED', [compensating('PAYMENT_FAILED')], reserved],
    [
      'COMPENSATED',
      'COMPENSATING',
      [compensating('PAYMENT_FAILED'), compensated('PAYMENT_FAILED')],
      compensating('PAYMENT_FAILED'),
    ],
  ] as const)('refuses to move from %s to %s', (_from, _to, before, step) => {
    const { order } = run(placed(), ...before);
    expect(() => applySagaStep(order, step, at(50))).toThrow(InvalidTransitionError);
  });

  it.each(['STARTED', 'STOCK_RESERVED', 'PAYMENT_PENDING'] as const)(
    'starts compensating from %s without cancelling yet',
    (state) => {
      const steps = { STARTED: [], STOCK_RESERVED: [reserved], PAYMENT_PENDING: [reserved, paymentPending] }[
        state
      ];
      const { order } = run(placed(), ...steps);
      const outcome = applySagaStep(order, compensating('PAYMENT_FAILED'), at(10));
      expect(outcome.changed).toBe(true);
      expect(outcome.order.sagaState).toBe('COMPENSATING');
      expect(outcome.order.status).toBe(order.status);
    },
  );

  it.each([
    ['PAYMENT_TIMEOUT', 'PAYMENT_TIMEOUT'],
    ['PAYMENT_FAILED', 'PAYMENT_FAILED'],
    ['OUT_OF_STOCK', 'OUT_OF_STOCK'],
    ['UNKNOWN_PRODUCT', 'UNKNOWN_PRODUCT'],
    ['PAYMENT_CANCELED', 'PAYMENT_CANCELED'],
    ['ReservationExpiredError', 'RESERVATION_EXPIRED'],
  ])('a saga stopped by %s ends CANCELLED with reason %s', (error, reason) => {
    const { order } = run(placed(), reserved, paymentPending, compensating(error), compensated(error));
    expect(order).toMatchObject({
      status: 'CANCELLED',
      sagaState: 'COMPENSATED',
      cancellationReason: reason,
    });
    expect(orderView(order, backOffice).cancellationReason).toBe(reason);
  });

  it('a task timing out other than the payment step is a fault, not PAYMENT_TIMEOUT', () => {
    const { order } = run(placed(), reserved, compensating('States.Timeout'), compensated('States.Timeout'));
    expect(order).toMatchObject({ status: 'CANCELLED', sagaState: 'COMPENSATED' });
    expect(order.cancellationReason).toBe('PROCESSING_ERROR');
  });

  it.each([
    ['OutOfStockError', 'OUT_OF_STOCK'],
    ['UnknownProductError', 'UNKNOWN_PRODUCT'],
    ['PaymentDeclinedError', 'PAYMENT_FAILED'],
    ['PaymentAmountRefusedError', 'PAYMENT_FAILED'],
    ['PaymentCanceledError', 'PAYMENT_CANCELED'],
    ['PaymentTimeoutError', 'PAYMENT_TIMEOUT'],
    ['ReservationClosedError', 'RESERVATION_EXPIRED'],
    ['ZodError', 'PROCESSING_ERROR'],
  ])('a saga stopped by %s ends CANCELLED with reason %s', (error, reason) => {
    const { order } = run(placed(), compensating(error), compensated(error));
    expect(order.cancellationReason).toBe(reason);
  });

  it('a saga stopped by a fault that outlasted its retries ends CANCELLED PROCESSING_ERROR', () => {
    const { order, events } = run(
      placed(),
      reserved,
      compensating('Lambda.Unknown'),
      compensated('Lambda.Unknown'),
    );
    expect(order).toMatchObject({ status: 'CANCELLED', sagaState: 'COMPENSATED' });
    expect(orderView(order, backOffice).cancellationReason).toBe('PROCESSING_ERROR');
    const cancelled = events.find((event) => event.type === 'order.cancelled');
    expect(cancelled?.data).toMatchObject({ reason: 'PROCESSING_ERROR' });
  });

  it('keeps the first reason once compensation has started', () => {
    const { order } = run(placed(), compensating('OUT_OF_STOCK'), compensated('States.Timeout'));
    expect(order.cancellationReason).toBe('OUT_OF_STOCK');
  });

  it('emits order.status_changed on every step and order.completed exactly once', () => {
    const { events } = run(placed(), reserved, paymentPending, completed);
    expect(events.map((event) => event.type)).toEqual([
      'order.status_changed',
      'order.status_changed',
      'order.status_changed',
      'order.completed',
    ]);
    expect(events[0]?.data).toMatchObject({
      orderId: 'order-1',
      status: 'STOCK_RESERVED',
      sagaState: 'STOCK_RESERVED',
      previousStatus: 'PENDING',
      previousSagaState: 'STARTED',
    });
    expect(events[3]?.data).toEqual({
      orderId: 'order-1',
      status: 'COMPLETED',
      sagaState: 'COMPLETED',
      amount: 2400,
      currency: 'usd',
      paymentIntentId: 'pi_123',
    });
    for (const event of sequenceEvents(events, 0)) {
      expect(event.subject).toBe('order-1');
      expect(parseEvent(JSON.parse(JSON.stringify(event)))).toEqual(event);
    }
  });

  it('emits order.status_changed on every compensation step and order.cancelled exactly once', () => {
    const { events } = run(placed(), reserved, compensating('PAYMENT_FAILED'), compensated('PAYMENT_FAILED'));
    expect(events.map((event) => event.type)).toEqual([
      'order.status_changed',
      'order.status_changed',
      'order.status_changed',
      'order.cancelled',
    ]);
    expect(events[1]?.data).toMatchObject({ sagaState: 'COMPENSATING', reason: 'PAYMENT_FAILED' });
    expect(events[2]?.data).toMatchObject({
      status: 'CANCELLED',
      sagaState: 'COMPENSATED',
      previousSagaState: 'COMPENSATING',
      reason: 'PAYMENT_FAILED',
    });
    expect(events[3]?.data).toEqual({
      orderId: 'order-1',
      status: 'CANCELLED',
      sagaState: 'COMPENSATED',
      reason: 'PAYMENT_FAILED',
    });
  });
});

describe('orderView', () => {
  it('shows the contract fields and hides version and paymentMethodId', () => {
    const { order } = run(placed({ paymentMethodId: 'pm_card_visa' }), reserved, paymentPending, completed);
    const view = orderView(order, backOffice);
    expect(view).not.toHaveProperty('version');
    expect(view).not.toHaveProperty('paymentMethodId');
    expect(Object.keys(view).sort()).toEqual(
      [
        'orderId',
        'customerId',
        'items',
        'amount',
        'currency',
        'status',
        'sagaState',
        'payment',
        'history',
        'createdAt',
        'updatedAt',
      ].sort(),
    );
  });

  it('leaves out amount and payment before they exist', () => {
    const view = orderView(placed(), backOffice);
    expect(view).not.toHaveProperty('amount');
    expect(view).not.toHaveProperty('payment');
    expect(view).not.toHaveProperty('cancellationReason');
  });
});

describe('the payment an order shows', () => {
  const intent = {
    paymentIntentId: 'pi_123',
    status: 'requires_payment_method',
    clientSecret: 'pi_123_secret_x',
  };
  const pendingWithIntent: SagaStep = { step: 'PAYMENT_PENDING', orderId: 'order-1', payment: intent };
  const waiting = () => run(placed({ paymentMethodId: undefined }), reserved, pendingWithIntent).order;

  it('while PAYMENT_PENDING: the PaymentIntent and its client secret, for the customer to confirm', () => {
    expect(orderView(waiting(), backOffice).payment).toEqual(intent);
    expect(orderView(waiting(), { kind: 'backOffice', via: 'iam' }).payment).toEqual(intent);
    expect(orderView(waiting(), customer('cust-1')).payment).toEqual(intent);
  });

  it("never shows the client secret to a signed-in caller who is not the order's customer, nor to a shop admin", () => {
    const callers: Caller[] = [
      customer('someone-else'),
      customer(''),
      { kind: 'backOffice', via: 'admin-token' },
    ];
    for (const caller of callers) {
      expect(orderView(waiting(), caller).payment, JSON.stringify(caller)).toEqual({
        paymentIntentId: 'pi_123',
        status: 'requires_payment_method',
      });
    }
  });

  it('shows the last declined attempt while the customer may try another card', () => {
    const lastError = {
      code: 'card_declined',
      declineCode: 'generic_decline',
      message: 'Your card was declined.',
    };
    expect(orderView(waiting(), customer('cust-1'), { lastError }).payment).toEqual({ ...intent, lastError });
  });

  it('stops showing the client secret once the customer asked to cancel', () => {
    const outcome = requestCancellation(waiting(), at(30));
    if (!('changed' in outcome) || !outcome.changed) throw new Error('cancellation did not change the order');
    expect(orderView(outcome.order, customer('cust-1')).payment).not.toHaveProperty('clientSecret');
  });

  it('on completion: the settled payment, without the client secret', () => {
    const { order } = run(waiting(), completed);
    expect(orderView(order, customer('cust-1')).payment).toEqual({
      paymentIntentId: 'pi_123',
      status: 'succeeded',
    });
  });

  it('on compensation: no payment at all, the intent being canceled or refunded', () => {
    const { order } = run(waiting(), compensating('PAYMENT_TIMEOUT'), compensated('PAYMENT_TIMEOUT'));
    expect(order.payment).toBeUndefined();
    expect(orderView(order, customer('cust-1'))).not.toHaveProperty('payment');
  });

  it('without an intent (CreatePayment found the payment closed, or an older execution): no payment', () => {
    const closed: SagaStep = {
      step: 'PAYMENT_PENDING',
      orderId: 'order-1',
      payment: { paymentIntentId: null, status: 'canceled', clientSecret: null },
    };
    expect(run(placed(), reserved, closed).order.payment).toBeUndefined();
    expect(run(placed(), reserved, paymentPending).order.payment).toBeUndefined();
  });
});

describe('customer cancellation', () => {
  const paid: SagaStep = { step: 'PAYMENT_SUCCEEDED', orderId: 'order-1' };
  const cancelled = (order: Order) => {
    const outcome = requestCancellation(order, at(30));
    if (!('changed' in outcome) || !outcome.changed) throw new Error('cancellation did not change the order');
    return outcome.order;
  };

  it.each([
    ['STARTED', []],
    ['STOCK_RESERVED', [reserved]],
    ['PAYMENT_PENDING', [reserved, paymentPending]],
  ] as const)('is accepted while the saga is %s, and asking again changes nothing', (_state, steps) => {
    const order = cancelled(run(placed(), ...steps).order);
    expect(order.cancelRequestedAt).toBe(at(30).toISOString());
    expect(requestCancellation(order, at(31))).toEqual({ changed: false, order });
  });

  it('stops the saga at its next step, which then compensates with CUSTOMER_CANCELLED', () => {
    const order = cancelled(placed());
    expect(() => applySagaStep(order, reserved, at(31))).toThrow(CustomerCancelledError);
    const { order: done, events } = run(
      order,
      compensating('CustomerCancelledError'),
      compensated('CustomerCancelledError'),
    );
    expect(done).toMatchObject({ status: 'CANCELLED', cancellationReason: 'CUSTOMER_CANCELLED' });
    expect(events.find((event) => event.type === 'order.cancelled')?.data).toMatchObject({
      reason: 'CUSTOMER_CANCELLED',
    });
  });

  it('wins over a payment that succeeds later: recording the payment fails, so the saga refunds', () => {
    const order = cancelled(run(placed(), reserved, paymentPending).order);
    expect(() => applySagaStep(order, paid, at(31))).toThrow(CustomerCancelledError);
  });

  it('keeps CUSTOMER_CANCELLED as the reason even when the payment step timed out first', () => {
    const order = cancelled(run(placed(), reserved, paymentPending).order);
    const { order: done } = run(order, compensating('PAYMENT_TIMEOUT'), compensated('PAYMENT_TIMEOUT'));
    expect(done.cancellationReason).toBe('CUSTOMER_CANCELLED');
  });

  it('is refused once the payment succeeded, and after the saga ended', () => {
    const { order: paidOrder } = run(placed(), reserved, paymentPending, paid);
    expect(paidOrder.paidAt).toBeDefined();
    expect(requestCancellation(paidOrder, at(30))).toEqual({
      outcome: 'NOT_CANCELLABLE',
      message: 'Order order-1 is paid and can no longer be cancelled.',
    });
    const { order: done } = run(placed(), reserved, paymentPending, paid, completed);
    expect(requestCancellation(done, at(30))).toEqual({
      outcome: 'NOT_CANCELLABLE',
      message: 'Order order-1 is completed and can no longer be cancelled.',
    });
    const { order: compensatedOrder } = run(
      placed(),
      compensating('OUT_OF_STOCK'),
      compensated('OUT_OF_STOCK'),
    );
    expect(requestCancellation(compensatedOrder, at(30))).toMatchObject({ outcome: 'NOT_CANCELLABLE' });
  });

  it('is a no-op while the saga is already compensating: the order ends cancelled anyway', () => {
    const { order } = run(placed(), reserved, compensating('OUT_OF_STOCK'));
    expect(requestCancellation(order, at(30))).toEqual({ changed: false, order });
  });

  it('records the payment once; a repeat of that step changes nothing', () => {
    const { order } = run(placed(), reserved, paymentPending, paid);
    expect(order.paidAt).toBe(at(3).toISOString());
    expect(order.payment).toBeUndefined(); // shown from COMPLETED on: a paid order may still be refunded
    expect(applySagaStep(order, paid, at(40)).changed).toBe(false);
  });
});

describe('whose order it is', () => {
  const request = (customerId?: string) =>
    CreateOrderRequestSchema.parse(
      customerId ? { ...validRequest, customerId } : { items: validRequest.items },
    );

  it("is the token's customer, whether the body names them or not; naming another is refused", () => {
    expect(customerOf(request(), customer('c-1'))).toEqual({ customerId: 'c-1' });
    expect(customerOf(request('c-1'), customer('c-1'))).toEqual({ customerId: 'c-1' });
    expect(customerOf(request('c-2'), customer('c-1'))).toEqual({ refused: 'CUSTOMER_MISMATCH' });
    // A token without `sub` names nobody.
    expect(customerOf(request(), customer(''))).toEqual({ refused: 'CUSTOMER_MISMATCH' });
  });

  it('is the customer the back office names, who must be named', () => {
    for (const via of ['admin-token', 'iam', 'no-authorizer'] as const) {
      expect(customerOf(request('c-2'), { kind: 'backOffice', via })).toEqual({ customerId: 'c-2' });
      expect(customerOf(request(), { kind: 'backOffice', via })).toEqual({ refused: 'CUSTOMER_REQUIRED' });
    }
  });

  it('decides who sees it: its customer and the back office, nobody else', () => {
    const order = placed();
    expect(isVisibleTo(order, customer('cust-1'))).toBe(true);
    expect(isVisibleTo(order, customer('cust-2'))).toBe(false);
    expect(isVisibleTo(order, customer(''))).toBe(false);
    expect(isVisibleTo(order, { kind: 'backOffice', via: 'admin-token' })).toBe(true);
    expect(isVisibleTo(order, { kind: 'backOffice', via: 'iam' })).toBe(true);
  });
});

describe('why the order ended: the cancellation detail', () => {
  /** A Cause as Lambda reports a thrown error to Step Functions: only its name, message and stack. */
  const thrownCause = (error: Error) =>
    JSON.stringify({ errorType: error.name, errorMessage: error.message, trace: error.stack?.split('\n') });
  const failing = (failure: { Error: string; Cause?: string }) => {
    const { order } = run(
      placed(),
      reserved,
      { step: 'COMPENSATING', orderId: 'order-1', failure },
      { step: 'COMPENSATED', orderId: 'order-1', failure },
    );
    return order;
  };

  it("shows a decline's code and Stripe's sentence, as the payment step reports it", () => {
    const order = failing({
      Error: 'PaymentDeclinedError',
      Cause: JSON.stringify({
        paymentIntentId: 'pi_1',
        failureCode: 'generic_decline',
        message: 'Your card was declined.',
      }),
    });
    expect(order.cancellationReason).toBe('PAYMENT_FAILED');
    expect(orderView(order, backOffice).cancellationDetail).toEqual({
      declineCode: 'generic_decline',
      message: 'Your card was declined.',
    });
  });

  it('shows a decline the step raised as an error the same way, its detail surviving Lambda', () => {
    const error = new PaymentClosedError({
      orderId: 'order-1',
      amount: 2400,
      currency: 'usd',
      status: 'FAILED',
      failureCode: 'insufficient_funds',
      failureMessage: 'Your card has insufficient funds.',
      createdAt: T0.toISOString(),
      updatedAt: T0.toISOString(),
    });
    expect(error.name).toBe('PaymentDeclinedError');
    expect(cancellationDetailOf({ Error: error.name, Cause: thrownCause(error) })).toEqual({
      declineCode: 'insufficient_funds',
      message: 'Your card has insufficient funds.',
    });
  });

  it.each([
    ['OUT_OF_STOCK', 'OutOfStockError', 'Not enough stock: tee-black, mug.white'],
    ['UNKNOWN_PRODUCT', 'UnknownProductError', 'Unknown products: tee-black, mug.white'],
  ] as const)('%s shows the SKUs that were short or unknown', (reason, name, message) => {
    const error = new StockUnavailableError(reason, ['tee-black', 'mug.white']);
    // Only what Lambda serializes reaches the Cause: the `skus` property itself does not.
    const order = failing({ Error: name, Cause: thrownCause(error) });
    expect(order.cancellationReason).toBe(reason);
    expect(orderView(order, backOffice).cancellationDetail).toEqual({
      skus: ['tee-black', 'mug.white'],
      message,
    });
  });

  it("shows an amount Stripe refuses with Stripe's code", () => {
    const error = new PaymentAmountRefusedError('order-1', 0, 'usd', 'amount_too_small', 50);
    expect(cancellationDetailOf({ Error: error.name, Cause: thrownCause(error) })).toEqual({
      declineCode: 'amount_too_small',
      message: "Order order-1: 0 usd is below Stripe's minimum charge of 50 (amount_too_small)",
    });
  });

  it("shows an outcome's sentence when it has no detail of its own", () => {
    const error = new ReservationExpiredError('order-1');
    expect(cancellationDetailOf({ Error: error.name, Cause: thrownCause(error) })).toEqual({
      message: 'The stock reservation of order order-1 has expired',
    });
  });

  it.each([
    ['Lambda.Unknown', 'The function timed out after 30 s at /var/task/index.mjs'],
    ['States.Timeout', JSON.stringify({ errorMessage: 'Task timed out' })],
    [
      'ZodError',
      JSON.stringify({ errorType: 'ZodError', errorMessage: 'secret internals: table Orders', trace: [] }),
    ],
    [
      'ConcurrentChangeError',
      JSON.stringify({ errorType: 'ConcurrentChangeError', errorMessage: 'kept changing', trace: [] }),
    ],
  ])('shows nothing of a fault or a bug (%s): PROCESSING_ERROR alone', (name, cause) => {
    const order = failing({ Error: name, Cause: cause });
    expect(order.cancellationReason).toBe('PROCESSING_ERROR');
    expect(order.cancellationDetail).toBeUndefined();
    expect(orderView(order, backOffice)).not.toHaveProperty('cancellationDetail');
  });

  it.each([
    ['no Cause', undefined],
    ['a Cause that is not JSON', 'because'],
    ['JSON of another shape', JSON.stringify([1, 2, 3])],
    ['a null', 'null'],
    ['a message that is empty', JSON.stringify({ errorType: 'OutOfStockError', errorMessage: '' })],
    ['a payment cause without a code', JSON.stringify({ paymentIntentId: 'pi_1', message: null })],
  ])('never fails on an outcome with %s: the reason stands alone', (_what, cause) => {
    const failure = { Error: 'OutOfStockError', ...(cause === undefined ? {} : { Cause: cause }) };
    expect(cancellationDetailOf(failure)).toBeUndefined();
    const order = failing(failure);
    expect(order).toMatchObject({ status: 'CANCELLED', cancellationReason: 'OUT_OF_STOCK' });
    expect(order.cancellationDetail).toBeUndefined();
  });

  it('keeps what parses of a garbled detail and drops the rest', () => {
    const garbled = (detail: string) =>
      JSON.stringify({
        errorType: 'OutOfStockError',
        errorMessage: `Not enough stock: a\noutcome-detail: ${detail}`,
      });
    expect(
      cancellationDetailOf({ Error: 'OutOfStockError', Cause: garbled('{"skus":["a"],"declineCode":7}') }),
    ).toEqual({
      skus: ['a'],
      message: 'Not enough stock: a',
    });
    expect(
      cancellationDetailOf({ Error: 'OutOfStockError', Cause: garbled('{"skus":["not a sku!"]') }),
    ).toEqual({
      message: 'Not enough stock: a',
    });
    expect(
      cancellationDetailOf({ Error: 'OutOfStockError', Cause: garbled('{"skus":["white space"]}') }),
    ).toEqual({
      message: 'Not enough stock: a',
    });
  });

  it("keeps the first failure's detail, and none from a failure the customer's cancel overrode", () => {
    const short = {
      Error: 'OutOfStockError',
      Cause: thrownCause(new StockUnavailableError('OUT_OF_STOCK', ['a'])),
    };
    const { order } = run(
      placed(),
      { step: 'COMPENSATING', orderId: 'order-1', failure: short },
      compensated('Lambda.Unknown'),
    );
    expect(order.cancellationDetail).toEqual({ skus: ['a'], message: 'Not enough stock: a' });

    const declined = {
      Error: 'PaymentDeclinedError',
      Cause: JSON.stringify({ failureCode: 'generic_decline', message: 'Your card was declined.' }),
    };
    const asked = requestCancellation(run(placed(), reserved, paymentPending).order, at(30));
    if (!('changed' in asked) || !asked.changed) throw new Error('cancellation did not change the order');
    const { order: cancelled } = run(
      asked.order,
      { step: 'COMPENSATING', orderId: 'order-1', failure: declined },
      { step: 'COMPENSATED', orderId: 'order-1', failure: declined },
    );
    expect(cancelled.cancellationReason).toBe('CUSTOMER_CANCELLED');
    expect(cancelled.cancellationDetail).toBeUndefined();
    expect(orderView(cancelled, backOffice).cancelRequestedAt).toBe(at(30).toISOString());
  });

  it('shows when the customer asked to cancel, from the moment it is recorded', () => {
    expect(orderView(placed(), backOffice)).not.toHaveProperty('cancelRequestedAt');
    const asked = requestCancellation(placed(), at(30));
    if (!('changed' in asked) || !asked.changed) throw new Error('cancellation did not change the order');
    expect(orderView(asked.order, customer('cust-1')).cancelRequestedAt).toBe(at(30).toISOString());
  });
});

describe('a cancel Stripe honoured, recorded however far the saga got meanwhile', () => {
  const customerCancelled = compensating('CustomerCancelledError');

  it('while the saga waits, as any cancel', () => {
    const { order } = run(placed(), reserved, paymentPending);
    expect(recordHonouredCancellation(order, at(30))).toEqual(requestCancellation(order, at(30)));
  });

  it('after the saga heard it and began compensating, or even finished: when the customer asked', () => {
    for (const steps of [
      [reserved, paymentPending, customerCancelled],
      [reserved, paymentPending, customerCancelled, compensated('CustomerCancelledError')],
    ]) {
      const { order } = run(placed(), ...steps);
      const outcome = recordHonouredCancellation(order, at(30));
      expect(outcome).toMatchObject({ changed: true, order: { cancelRequestedAt: at(30).toISOString() } });
      const recorded = (outcome as { order: Order }).order;
      expect(recorded).toMatchObject({
        sagaState: order.sagaState,
        cancellationReason: 'CUSTOMER_CANCELLED',
      });
      expect(recordHonouredCancellation(recorded, at(31))).toEqual({ changed: false, order: recorded });
    }
  });

  it('is refused for an order that ended for another reason, as any cancel', () => {
    const { order } = run(placed(), compensating('OutOfStockError'), compensated('OutOfStockError'));
    expect(recordHonouredCancellation(order, at(30))).toMatchObject({ outcome: 'NOT_CANCELLABLE' });
  });
});
