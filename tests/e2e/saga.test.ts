import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dynamoInventoryRepository } from '../../functions/inventory/inventory-repository.ts';
import { newOrder } from '../../functions/orders/order.ts';
import { dynamoOrderRepository } from '../../functions/orders/order-repository.ts';
import { dynamoPaymentRepository } from '../../functions/payments/payment-repository.ts';
import { DEFAULT_WEBHOOK_SECRET } from '../../infra/local/config.ts';
import { countOf, typesOf, waitForEvents } from '../support/nats-events.ts';
import { pollUntil } from '../support/poll.ts';
import { startTarget, type Target } from '../support/target.ts';

/*
 * The whole saga through the local runtime: real DynamoDB Local, real nats-server (JetStream), the
 * synthesized state machine, the Stripe emulator driven by the real `stripe` SDK. The same tests run
 * against a deployed stack with E2E_API_URL (tests/support/target.ts).
 */

let target: Target;
let natsUrl: string;

beforeAll(async () => {
  target = await startTarget();
  natsUrl = target.natsUrl;
});

afterAll(async () => {
  await target?.stop();
});

const api = (path: string, init?: RequestInit) => fetch(`${target.apiUrl}${path}`, init);
const json = { 'content-type': 'application/json' };

async function putProduct(sku: string, available: number, unitPrice = 1250, lowStockThreshold = 0) {
  const response = await api(`/products/${sku}`, {
    method: 'PUT',
    headers: json,
    body: JSON.stringify({
      name: `Product ${sku}`,
      unitPrice,
      currency: 'usd',
      available,
      lowStockThreshold,
    }),
  });
  expect(response.status).toBe(200);
}

async function getProduct(sku: string) {
  const response = await api(`/products/${sku}`);
  expect(response.status).toBe(200);
  return (await response.json()) as { available: number; reserved: number };
}

async function placeOrder(body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const response = await api('/orders', {
    method: 'POST',
    headers: { ...json, ...headers },
    body: JSON.stringify(body),
  });
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown> & { orderId: string },
  };
}

type OrderView = {
  status: string;
  sagaState: string;
  cancellationReason?: string;
  amount?: number;
  payment?: { paymentIntentId: string; status: string; clientSecret?: string };
  history: Array<{ sagaState: string }>;
};

const getOrder = async (orderId: string) => (await (await api(`/orders/${orderId}`)).json()) as OrderView;
const settledOrder = (orderId: string) =>
  pollUntil(
    `order ${orderId} settles`,
    () => getOrder(orderId),
    (order) => ['COMPLETED', 'COMPENSATED'].includes(order.sagaState),
  );

function repositories() {
  const client = DynamoDBDocumentClient.from(
    new DynamoDBClient(
      target.dynamodbEndpoint
        ? {
            endpoint: target.dynamodbEndpoint,
            region: 'us-east-1',
            credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
          }
        : {},
    ),
  );
  return {
    orders: dynamoOrderRepository(client, target.tableNames.orders),
    inventory: dynamoInventoryRepository(client, target.tableNames.inventory),
    payments: dynamoPaymentRepository(client, target.tableNames.payments),
  };
}

const sku = () => `sku-${randomUUID().slice(0, 8)}`;

describe('an order paid with a card that succeeds', () => {
  it('completes: stock sold, reservation confirmed, each event on NATS exactly once', async () => {
    const tee = sku();
    await putProduct(tee, 10, 2500);

    const placed = await placeOrder({
      customerId: 'cust-1',
      items: [{ sku: tee, quantity: 3 }],
      paymentMethodId: 'pm_card_visa',
    });
    expect(placed.status).toBe(202);
    expect(placed.body).toMatchObject({ status: 'PENDING', sagaState: 'STARTED', currency: 'usd' });

    const order = await settledOrder(placed.body.orderId);
    expect(order).toMatchObject({ status: 'COMPLETED', sagaState: 'COMPLETED', amount: 7500 });
    expect(order.payment?.paymentIntentId).toMatch(/^pi_/);
    expect(order.history.map((step) => step.sagaState)).toEqual([
      'STARTED',
      'STOCK_RESERVED',
      'PAYMENT_PENDING',
      'COMPLETED',
    ]);

    expect(await getProduct(tee)).toMatchObject({ available: 7, reserved: 0 });
    const { inventory, payments } = repositories();
    expect(await inventory.getReservation(placed.body.orderId)).toMatchObject({ status: 'CONFIRMED' });
    expect(await payments.get(placed.body.orderId)).toMatchObject({ status: 'SUCCEEDED', amount: 7500 });

    // Each table's stream reaches NATS on its own: wait until every expected type has arrived, then
    // until the outbox is drained, and only then count.
    const expected = [
      'order.created',
      'inventory.reserved',
      'payment.initiated',
      'payment.succeeded',
      'order.completed',
    ];
    await waitForEvents(natsUrl, placed.body.orderId, (seen) =>
      expected.every((type) => countOf(seen, type) > 0),
    );
    await target.drained();
    const settled = await waitForEvents(natsUrl, placed.body.orderId, () => true);
    for (const type of expected) expect(countOf(settled, type), type).toBe(1);
    for (const stored of settled) {
      expect(stored.msgId).toBe(stored.event.id);
      expect(stored.natsSubject).toBe(stored.event.type);
    }
    const orderEvents = settled.filter((stored) => stored.stream === 'ORDERS');
    expect(typesOf(orderEvents)[0]).toBe('order.created');
    expect(typesOf(orderEvents).at(-1)).toBe('order.completed');
    const created = settled.find((stored) => stored.event.type === 'order.created')!.event;
    expect(created.data).toMatchObject({
      customerId: 'cust-1',
      items: [{ sku: tee, quantity: 3 }],
      currency: 'usd',
    });
  });
});

describe('stock a shop can watch', () => {
  type Page = { items: Array<Record<string, unknown>>; nextCursor?: string };
  const reservations = async (query: string) => {
    const response = await api(`/inventory/reservations?${query}`);
    return { status: response.status, body: (await response.json()) as Page & { error?: { code: string } } };
  };

  it("lists a completed order's reservation lines CONFIRMED, by order and by SKU, and alerts low stock once", async () => {
    const [mug, cap] = [sku(), sku()];
    await putProduct(mug, 6, 900, 4);
    await putProduct(cap, 10, 1500);
    const placed = await placeOrder({
      customerId: 'cust-stock',
      items: [
        { sku: mug, quantity: 3 }, // 6 → 3: below 4
        { sku: cap, quantity: 1 },
      ],
      paymentMethodId: 'pm_card_visa',
    });
    expect((await settledOrder(placed.body.orderId)).status).toBe('COMPLETED');

    const byOrder = await reservations(`orderId=${placed.body.orderId}`);
    expect(byOrder.status).toBe(200);
    expect(
      byOrder.body.items.map(({ sku: line, quantity, status }) => ({ sku: line, quantity, status })),
    ).toEqual(
      [
        { sku: mug, quantity: 3, status: 'CONFIRMED' },
        { sku: cap, quantity: 1, status: 'CONFIRMED' },
      ].sort((a, b) => (a.sku < b.sku ? -1 : 1)),
    );
    const bySku = await pollUntil(
      'the line index catches up',
      () => reservations(`sku=${mug}&limit=10`),
      (page) => page.body.items[0]?.status === 'CONFIRMED',
    );
    expect(bySku.body.items).toEqual([
      {
        reservationId: expect.any(String),
        orderId: placed.body.orderId,
        sku: mug,
        quantity: 3,
        status: 'CONFIRMED',
        expiresAt: expect.any(String),
        createdAt: expect.any(String),
      },
    ]);

    const alerts = await waitForEvents(natsUrl, mug, (seen) => countOf(seen, 'inventory.low_stock') > 0);
    await target.drained();
    expect((await waitForEvents(natsUrl, mug, () => true)).map((stored) => stored.event.data)).toEqual([
      { sku: mug, available: 3, threshold: 4 },
    ]);
    expect(alerts[0]!.stream).toBe('INVENTORY');
    await target.drained();
    expect(countOf(await waitForEvents(natsUrl, cap, () => true), 'inventory.low_stock')).toBe(0);
  });

  it('refuses a reservation query without exactly one filter, or with a bad limit or cursor', async () => {
    for (const query of [
      '',
      `orderId=x&sku=${sku()}`,
      `sku=${sku()}&limit=0`,
      `sku=${sku()}&limit=abc`,
      'sku=a%20b',
      `sku=${sku()}&status=ACTIVE`,
    ]) {
      const answer = await reservations(query);
      expect(answer.status, query).toBe(400);
      expect(answer.body.error?.code, query).toBe('VALIDATION_FAILED');
    }
    const badCursor = await reservations(`sku=${sku()}&cursor=bm90LWEtY3Vyc29y`);
    expect(badCursor.status).toBe(400);
    expect(badCursor.body.error?.code).toBe('INVALID_CURSOR');
    expect(await reservations(`orderId=${randomUUID()}`)).toEqual({ status: 200, body: { items: [] } });
  });
});

describe('an order paid with a declined card', () => {
  it('is compensated: stock back exactly, reservation released, payment cancelled, events on NATS', async () => {
    const mug = sku();
    await putProduct(mug, 5, 1800);

    const placed = await placeOrder({
      customerId: 'cust-2',
      items: [{ sku: mug, quantity: 2 }],
      paymentMethodId: 'pm_card_chargeDeclined',
    });
    expect(placed.status).toBe(202);

    const order = await settledOrder(placed.body.orderId);
    expect(order).toMatchObject({
      status: 'CANCELLED',
      sagaState: 'COMPENSATED',
      cancellationReason: 'PAYMENT_FAILED',
    });
    expect(order.history.map((step) => step.sagaState)).toEqual([
      'STARTED',
      'STOCK_RESERVED',
      'PAYMENT_PENDING',
      'COMPENSATING',
      'COMPENSATED',
    ]);

    expect(await getProduct(mug)).toMatchObject({ available: 5, reserved: 0 });
    const { inventory, payments } = repositories();
    expect(await inventory.getReservation(placed.body.orderId)).toMatchObject({ status: 'RELEASED' });
    expect(await payments.get(placed.body.orderId)).toMatchObject({
      status: 'CANCELLED',
      failureCode: 'generic_decline',
    });

    const expected = [
      'order.created',
      'inventory.reserved',
      'payment.failed',
      'payment.cancelled',
      'inventory.released',
      'order.cancelled',
    ];
    await waitForEvents(natsUrl, placed.body.orderId, (seen) =>
      expected.every((type) => countOf(seen, type) > 0),
    );
    await target.drained();
    const events = await waitForEvents(natsUrl, placed.body.orderId, () => true);
    for (const type of expected) expect(countOf(events, type), type).toBe(1);
    const failed = events.find((stored) => stored.event.type === 'payment.failed')!.event;
    expect(failed.data).toMatchObject({
      orderId: placed.body.orderId,
      failureCode: 'generic_decline',
      amount: 3600,
      currency: 'usd',
    });
    const cancelled = events.find((stored) => stored.event.type === 'order.cancelled')!.event;
    expect(cancelled.data).toMatchObject({
      status: 'CANCELLED',
      sagaState: 'COMPENSATED',
      reason: 'PAYMENT_FAILED',
    });
  });
});

describe('an order for more than is in stock', () => {
  it('is cancelled OUT_OF_STOCK without holding anything', async () => {
    const [plenty, scarce] = [sku(), sku()];
    await putProduct(plenty, 10);
    await putProduct(scarce, 1);

    const placed = await placeOrder({
      customerId: 'cust-3',
      items: [
        { sku: plenty, quantity: 2 },
        { sku: scarce, quantity: 2 },
      ],
      paymentMethodId: 'pm_card_visa',
    });
    const order = await settledOrder(placed.body.orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', cancellationReason: 'OUT_OF_STOCK' });
    expect(await getProduct(plenty)).toMatchObject({ available: 10, reserved: 0 });
    expect(await getProduct(scarce)).toMatchObject({ available: 1, reserved: 0 });

    const events = await waitForEvents(
      natsUrl,
      placed.body.orderId,
      (seen) => countOf(seen, 'order.cancelled') > 0 && countOf(seen, 'inventory.out_of_stock') > 0,
    );
    const outOfStock = events.find((stored) => stored.event.type === 'inventory.out_of_stock')!.event;
    expect(outOfStock.data).toMatchObject({ reason: 'OUT_OF_STOCK', skus: [scarce] });
    expect(countOf(events, 'inventory.reserved')).toBe(0);
  });

  it('is cancelled UNKNOWN_PRODUCT when a sku does not exist', async () => {
    const placed = await placeOrder({ customerId: 'cust-3', items: [{ sku: sku(), quantity: 1 }] });
    const order = await settledOrder(placed.body.orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', cancellationReason: 'UNKNOWN_PRODUCT' });
  });
});

describe('an order whose payment never completes', () => {
  it('times out after PAYMENT_TIMEOUT_SECONDS: PaymentIntent canceled, stock back, PAYMENT_TIMEOUT', async () => {
    const item = sku();
    await putProduct(item, 3);
    const placed = await placeOrder({
      customerId: 'cust-6',
      items: [{ sku: item, quantity: 2 }],
      paymentMethodId: 'pm_card_authenticationRequired',
    });
    const pending = await pollUntil(
      'payment pending',
      () => getOrder(placed.body.orderId),
      (order) => order.sagaState === 'PAYMENT_PENDING',
    );
    expect(pending.status).toBe('PAYMENT_PENDING');
    expect(pending.payment?.clientSecret).toMatch(/_secret_/);
    expect(await getProduct(item)).toMatchObject({ available: 1, reserved: 2 });

    const order = await settledOrder(placed.body.orderId);
    expect(order).toMatchObject({
      status: 'CANCELLED',
      sagaState: 'COMPENSATED',
      cancellationReason: 'PAYMENT_TIMEOUT',
    });
    expect(await getProduct(item)).toMatchObject({ available: 3, reserved: 0 });
    const { payments } = repositories();
    expect(await payments.get(placed.body.orderId)).toMatchObject({
      status: 'CANCELLED',
      stripeStatus: 'canceled',
    });
    await waitForEvents(
      natsUrl,
      placed.body.orderId,
      (seen) => countOf(seen, 'order.cancelled') > 0 && countOf(seen, 'payment.cancelled') > 0,
    );
    await target.drained();
    const events = await waitForEvents(natsUrl, placed.body.orderId, () => true);
    expect(countOf(events, 'payment.cancelled')).toBe(1);
    expect(countOf(events, 'payment.succeeded') + countOf(events, 'payment.failed')).toBe(0);
  }, 40_000);
});

describe('an order placed without a payment method', () => {
  it('shows its customer the client secret; confirming with it, as Stripe.js does, completes the order', async () => {
    const item = sku();
    await putProduct(item, 3, 1500);
    const placed = await placeOrder({ customerId: 'cust-confirms', items: [{ sku: item, quantity: 2 }] });
    expect(placed.status).toBe(202);

    const pending = await pollUntil(
      'the client secret',
      () => getOrder(placed.body.orderId),
      (order) => order.sagaState === 'PAYMENT_PENDING',
    );
    expect(pending.payment).toEqual({
      paymentIntentId: expect.stringMatching(/^pi_/),
      status: 'requires_payment_method',
      clientSecret: expect.stringMatching(/^pi_\w+_secret_\w+$/),
    });
    const { paymentIntentId, clientSecret } = pending.payment!;

    // The customer's browser: the shop's publishable key and the order's client secret, nothing more.
    const stripeApi = new URL(target.stripeUrl);
    const browser = new Stripe('pk_test_e2e_shop', {
      host: stripeApi.hostname,
      port: Number(stripeApi.port),
      protocol: stripeApi.protocol === 'https:' ? 'https' : 'http',
      maxNetworkRetries: 0,
    });
    const confirmed = await browser.paymentIntents.confirm(paymentIntentId, {
      payment_method: 'pm_card_visa',
      client_secret: clientSecret!,
    } as Stripe.PaymentIntentConfirmParams);
    expect(confirmed).toMatchObject({ status: 'succeeded', amount: 3000 });

    const order = await settledOrder(placed.body.orderId);
    expect(order).toMatchObject({ status: 'COMPLETED', amount: 3000 });
    expect(order.payment).toEqual({ paymentIntentId, status: 'succeeded' });
    expect(await getProduct(item)).toMatchObject({ available: 1, reserved: 0 });
    const events = await waitForEvents(
      natsUrl,
      placed.body.orderId,
      (seen) => countOf(seen, 'order.completed') > 0,
    );
    expect(countOf(events, 'payment.initiated')).toBe(1);
    expect(countOf(events, 'payment.succeeded')).toBe(1);
  }, 40_000);
});

describe('an order whose request could not start its saga', () => {
  it('is started from its committed order.created (the outbox) and completes', async () => {
    const item = sku();
    await putProduct(item, 2);
    // What POST /orders leaves behind when Step Functions is unreachable: the order and its event.
    const { order, event } = newOrder(
      { customerId: 'cust-7', items: [{ sku: item, quantity: 1 }], paymentMethodId: 'pm_card_visa' },
      randomUUID(),
      new Date(),
    );
    expect(await repositories().orders.create(order, event)).toEqual({ created: true });

    expect(await settledOrder(order.orderId)).toMatchObject({ status: 'COMPLETED', sagaState: 'COMPLETED' });
    expect(await getProduct(item)).toMatchObject({ available: 1, reserved: 0 });
  });
});

describe('customer cancellation', () => {
  const cancel = (orderId: string) => api(`/orders/${orderId}/cancel`, { method: 'POST' });

  it('during the payment wait: accepted, then compensated with CUSTOMER_CANCELLED, stock back, intent canceled', async () => {
    const item = sku();
    await putProduct(item, 3);
    const placed = await placeOrder({
      customerId: 'cust-8',
      items: [{ sku: item, quantity: 2 }],
      paymentMethodId: 'pm_card_authenticationRequired',
    });
    await pollUntil(
      'payment pending',
      () => getOrder(placed.body.orderId),
      (order) => order.sagaState === 'PAYMENT_PENDING',
    );

    const accepted = await cancel(placed.body.orderId);
    expect(accepted.status).toBe(202);
    expect(await accepted.json()).toMatchObject({ orderId: placed.body.orderId, status: 'PAYMENT_PENDING' });
    // Repeated at once: accepted while compensation runs, or already cancelled (it is that quick).
    const repeat = await cancel(placed.body.orderId);
    expect([202, 409]).toContain(repeat.status);

    const order = await settledOrder(placed.body.orderId);
    expect(order).toMatchObject({
      status: 'CANCELLED',
      sagaState: 'COMPENSATED',
      cancellationReason: 'CUSTOMER_CANCELLED',
    });
    expect(await getProduct(item)).toMatchObject({ available: 3, reserved: 0 });
    expect(await repositories().payments.get(placed.body.orderId)).toMatchObject({ status: 'CANCELLED' });
    const events = await waitForEvents(
      natsUrl,
      placed.body.orderId,
      (seen) => countOf(seen, 'payment.cancelled') > 0,
    );
    const paymentCancelled = events.find((stored) => stored.event.type === 'payment.cancelled')!.event;
    // Canceled at Stripe by the cancel itself, not by the payment timeout (which would say PAYMENT_TIMEOUT).
    expect(paymentCancelled.data).toMatchObject({ reason: 'CUSTOMER_CANCELLED' });

    const again = await cancel(placed.body.orderId);
    expect(again.status).toBe(409);
    expect(await again.json()).toMatchObject({ error: { code: 'ORDER_NOT_CANCELLABLE' } });
  }, 40_000);

  it('racing a card that succeeds: either accepted and fully compensated, or refused and completed', async () => {
    const item = sku();
    await putProduct(item, 5);
    const placed = await placeOrder({
      customerId: 'cust-9',
      items: [{ sku: item, quantity: 1 }],
      paymentMethodId: 'pm_card_visa',
    });
    const answer = await cancel(placed.body.orderId);
    const order = await settledOrder(placed.body.orderId);
    if (answer.status === 202) {
      expect(order).toMatchObject({ status: 'CANCELLED', cancellationReason: 'CUSTOMER_CANCELLED' });
      expect(await getProduct(item)).toMatchObject({ available: 5, reserved: 0 });
      expect((await repositories().payments.get(placed.body.orderId))?.status ?? 'NONE').toMatch(
        /NONE|CANCELLED|REFUNDED/,
      );
    } else {
      expect(answer.status).toBe(409);
      expect(order).toMatchObject({ status: 'COMPLETED' });
      expect(await getProduct(item)).toMatchObject({ available: 4, reserved: 0 });
    }
  });

  it('is refused for a completed order and unknown for a missing one', async () => {
    const item = sku();
    await putProduct(item, 2);
    const placed = await placeOrder({
      customerId: 'cust-10',
      items: [{ sku: item, quantity: 1 }],
      paymentMethodId: 'pm_card_visa',
    });
    await settledOrder(placed.body.orderId);
    const refused = await cancel(placed.body.orderId);
    expect(refused.status).toBe(409);
    expect(await refused.json()).toMatchObject({ error: { code: 'ORDER_NOT_CANCELLABLE' } });
    expect((await getOrder(placed.body.orderId)).status).toBe('COMPLETED');
    expect((await cancel(randomUUID())).status).toBe(404);
  });
});

describe('an order with a payment method Stripe does not know', () => {
  it('is cancelled PAYMENT_FAILED with its stock back', async () => {
    const item = sku();
    await putProduct(item, 4);
    const placed = await placeOrder({
      customerId: 'cust-5',
      items: [{ sku: item, quantity: 1 }],
      paymentMethodId: 'pm_card_nonsense',
    });
    const order = await settledOrder(placed.body.orderId);
    expect(order).toMatchObject({ status: 'CANCELLED', cancellationReason: 'PAYMENT_FAILED' });
    expect(await getProduct(item)).toMatchObject({ available: 4, reserved: 0 });
  });
});

describe('the HTTP API', () => {
  it('answers health', async () => {
    const response = await api('/health');
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('rejects bad input with the contract error body and changes nothing', async () => {
    const post = (body: string, contentType = 'application/json') =>
      api('/orders', { method: 'POST', headers: { 'content-type': contentType }, body });

    const malformed = await post('{"customerId":');
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ error: { code: 'INVALID_JSON' } });

    expect((await post('customerId=x', 'application/x-www-form-urlencoded')).status).toBe(415);
    expect((await post(JSON.stringify({ customerId: 'x'.repeat(70 * 1024), items: [] }))).status).toBe(413);

    const unknownField = await post(
      JSON.stringify({ customerId: 'c', items: [{ sku: 'a', quantity: 1 }], coupon: 'FREE' }),
    );
    expect(unknownField.status).toBe(400);
    const body = (await unknownField.json()) as { error: { code: string; details: unknown[] } };
    expect(body.error.code).toBe('VALIDATION_FAILED');
    expect(body.error.details.length).toBeGreaterThan(0);

    const badQuantity = await post(
      JSON.stringify({ customerId: 'c', items: [{ sku: 'a', quantity: 1000 }] }),
    );
    expect(badQuantity.status).toBe(400);

    const badSku = await api('/products/bad%20sku', { method: 'PUT', headers: json, body: '{}' });
    expect(badSku.status).toBe(400);
  });

  it('answers 404 for unknown orders and products', async () => {
    const order = await api(`/orders/${randomUUID()}`);
    expect(order.status).toBe(404);
    expect(await order.json()).toMatchObject({ error: { code: 'ORDER_NOT_FOUND' } });
    expect((await api(`/products/${sku()}`)).status).toBe(404);
  });

  it('honours Idempotency-Key: one order and one saga per key', async () => {
    const item = sku();
    await putProduct(item, 10);
    const key = randomUUID();
    const request = {
      customerId: 'cust-4',
      items: [{ sku: item, quantity: 1 }],
      paymentMethodId: 'pm_card_visa',
    };
    const [first, second] = await Promise.all([
      placeOrder(request, { 'idempotency-key': key }),
      placeOrder(request, { 'idempotency-key': key }),
    ]);
    expect(first.status).toBe(202);
    expect(second.body.orderId).toBe(first.body.orderId);

    const reused = await placeOrder(
      { ...request, items: [{ sku: item, quantity: 2 }] },
      { 'idempotency-key': key },
    );
    expect(reused.status).toBe(409);
    expect(reused.body).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });

    await settledOrder(first.body.orderId);
    expect(await getProduct(item)).toMatchObject({ available: 9, reserved: 0 });
  });

  it('refuses webhooks without a valid Stripe signature', async () => {
    const body = JSON.stringify({ id: 'evt_x', type: 'payment_intent.succeeded', data: { object: {} } });
    const missing = await api('/payments/webhook', { method: 'POST', headers: json, body });
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ error: { code: 'MISSING_SIGNATURE' } });
    const forged = await api('/payments/webhook', {
      method: 'POST',
      headers: { ...json, 'stripe-signature': `t=${Math.floor(Date.now() / 1000)},v1=${'0'.repeat(64)}` },
      body,
    });
    expect(forged.status).toBe(400);
    expect(await forged.json()).toMatchObject({ error: { code: 'INVALID_SIGNATURE' } });

    const future = Math.floor(Date.now() / 1000) + 600;
    const fromTheFuture = await api('/payments/webhook', {
      method: 'POST',
      headers: {
        ...json,
        'stripe-signature': Stripe.webhooks.generateTestHeaderString({
          payload: body,
          secret: DEFAULT_WEBHOOK_SECRET,
          timestamp: future,
        }),
      },
      body,
    });
    expect(fromTheFuture.status).toBe(400);
  });

  it('acknowledges a signed event about a PaymentIntent it does not know', async () => {
    const body = JSON.stringify({
      id: `evt_${randomUUID()}`,
      object: 'event',
      type: 'payment_intent.succeeded',
      data: { object: { id: 'pi_unknown', object: 'payment_intent', status: 'succeeded', metadata: {} } },
    });
    const response = await api('/payments/webhook', {
      method: 'POST',
      headers: {
        ...json,
        'stripe-signature': Stripe.webhooks.generateTestHeaderString({
          payload: body,
          secret: DEFAULT_WEBHOOK_SECRET,
        }),
      },
      body,
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ received: true });
  });
});
