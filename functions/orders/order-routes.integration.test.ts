import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startLambdaEndpoint, type LambdaEndpoint } from '../../infra/local/lambda-endpoint.ts';
import type { HttpHandler } from '../../shared/http.ts';
import { serviceTable } from '../../tests/support/service-table.ts';
import { applyStep } from './apply-saga-step.ts';
import type { SagaStep } from './order.ts';
import { dynamoOrderRepository, type OrderRepository } from './order-repository.ts';

/*
 * The orders HTTP handlers as Lambda runs them (module-level configuration from the environment),
 * against the orders table in DynamoDB Local: whose orders a caller sees and acts on, and who may
 * see an order's client secret. API Gateway's JWT authorizer puts the token's claims (and scopes) in
 * `requestContext.authorizer.jwt`; these tests do the same.
 */

let raw: DynamoDBClient;
let orders: OrderRepository;
let getOrder: HttpHandler;
let cancelOrder: HttpHandler;
let createOrder: HttpHandler;
let lambdaApi: LambdaEndpoint;
/** What the payments service was asked, through the Lambda Invoke API, and what it answers. */
const paymentsAsked: Array<{ functionName: string; payload: unknown }> = [];
const answerAsPayments = (payload: { action: string }) =>
  payload.action === 'cancel' ? { outcome: 'canceled' } : { clientSecret: null, lastError: null };
let paymentsAnswer: (payload: { action: string }) => unknown = answerAsPayments;

beforeAll(async () => {
  let client: DynamoDBDocumentClient;
  let table: string;
  ({ raw, client, table } = await serviceTable('Orders', (table) => ({ ORDERS_TABLE_NAME: table })));
  orders = dynamoOrderRepository(client, table);
  // Nothing listens there: the saga cannot start, which POST /orders reports with a 202 all the same.
  vi.stubEnv('AWS_ENDPOINT_URL_SFN', 'http://127.0.0.1:9');
  vi.stubEnv('STATE_MACHINE_ARN', 'arn:aws:states:us-east-1:000000000000:stateMachine:saga');
  // The payments function behind the local Lambda Invoke API, scripted: these tests are the orders routes'.
  lambdaApi = await startLambdaEndpoint(async (functionName, payload) => {
    paymentsAsked.push({ functionName, payload });
    return paymentsAnswer(payload as { action: string });
  });
  vi.stubEnv('AWS_ENDPOINT_URL_LAMBDA', lambdaApi.url);
  vi.stubEnv('PAYMENTS_FUNCTION_NAME', 'CustomerPayment');
  ({ handler: getOrder } = await import('./get-order.ts'));
  ({ handler: cancelOrder } = await import('./cancel-order.ts'));
  ({ handler: createOrder } = await import('./create-order.ts'));
});

afterAll(async () => {
  vi.unstubAllEnvs();
  raw?.destroy();
  await lambdaApi?.close();
});

type Caller = { sub: string } | { admin: string } | 'token without sub' | 'no authorizer';

async function call(
  handler: HttpHandler,
  caller: Caller,
  request: {
    method: string;
    path: string;
    orderId?: string;
    body?: unknown;
    headers?: Record<string, string>;
  },
) {
  const authorizer =
    caller === 'no authorizer'
      ? {}
      : {
          authorizer: {
            jwt:
              caller === 'token without sub'
                ? { claims: { scope: 'orders' }, scopes: ['orders'] }
                : 'admin' in caller
                  ? { claims: { sub: caller.admin, scope: 'orders/admin' }, scopes: ['orders/admin'] }
                  : { claims: { sub: caller.sub }, scopes: [] },
          },
        };
  const event = {
    version: '2.0',
    routeKey: `${request.method} ${request.path}`,
    rawPath: request.path,
    rawQueryString: '',
    headers: { 'content-type': 'application/json', ...request.headers },
    requestContext: { http: { method: request.method, path: request.path }, ...authorizer },
    ...(request.orderId ? { pathParameters: { orderId: request.orderId } } : {}),
    ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
  const response = (await handler(event, {} as Context)) as APIGatewayProxyStructuredResultV2;
  return {
    status: response.statusCode,
    body: JSON.parse(String(response.body)) as {
      orderId: string;
      customerId: string;
      payment?: Record<string, unknown>;
      error?: { code: string; message: string };
    },
  };
}

const intent = {
  paymentIntentId: 'pi_routes',
  status: 'requires_payment_method',
  clientSecret: 'pi_routes_secret_x',
};

/**
 * Places an order through POST /orders and moves it to PAYMENT_PENDING with its PaymentIntent, the
 * way an execution started before the secret left the saga's state did (the order stores it).
 */
async function waitingForPayment(customerId: string, idempotencyKey = randomUUID()) {
  const request = {
    method: 'POST',
    path: '/orders',
    body: { customerId, items: [{ sku: 'SKU-ROUTES', quantity: 1 }] },
    headers: { 'idempotency-key': idempotencyKey },
  };
  const placed = await call(createOrder, { sub: customerId }, request);
  expect(placed.status).toBe(202);
  const { orderId } = placed.body;
  const step = applyStep({ orders, now: () => new Date() });
  const steps: SagaStep[] = [
    {
      step: 'STOCK_RESERVED',
      orderId,
      reservation: {
        amount: 900,
        currency: 'usd',
        items: [{ sku: 'SKU-ROUTES', quantity: 1, unitPrice: 900 }],
      },
    },
    { step: 'PAYMENT_PENDING', orderId, payment: intent },
  ];
  for (const command of steps) await step(command);
  return { orderId, request };
}

/** PAYMENT_PENDING in one write, as the saga does now: the order stores no client secret. */
async function waitingWithoutStoredSecret(customerId: string) {
  const placed = await call(
    createOrder,
    { sub: customerId },
    { method: 'POST', path: '/orders', body: { customerId, items: [{ sku: 'SKU-ROUTES', quantity: 1 }] } },
  );
  const { orderId } = placed.body;
  await applyStep({ orders, now: () => new Date() })({
    step: 'PAYMENT_PENDING',
    orderId,
    reservation: {
      amount: 900,
      currency: 'usd',
      items: [{ sku: 'SKU-ROUTES', quantity: 1, unitPrice: 900 }],
    },
    payment: { paymentIntentId: 'pi_routes', status: 'requires_payment_method', clientSecret: null },
  });
  return orderId;
}

describe("an order's client secret", () => {
  it('GET /orders/{id} asks the payment for it (it is not in the saga), for the customer only', async () => {
    const orderId = await waitingWithoutStoredSecret('cust-asks');
    paymentsAnswer = () => ({ clientSecret: 'pi_routes_secret_from_payments' });
    paymentsAsked.length = 0;
    const get = (caller: Caller) =>
      call(getOrder, caller, { method: 'GET', path: `/orders/${orderId}`, orderId });

    expect((await get({ sub: 'cust-asks' })).body.payment).toEqual({
      paymentIntentId: 'pi_routes',
      status: 'requires_payment_method',
      clientSecret: 'pi_routes_secret_from_payments',
    });
    expect((await get({ admin: 'ops-1' })).body.payment).not.toHaveProperty('clientSecret');
    expect(paymentsAsked).toEqual([
      { functionName: 'CustomerPayment', payload: { action: 'clientSecret', orderId } },
      { functionName: 'CustomerPayment', payload: { action: 'clientSecret', orderId } },
    ]);
    paymentsAnswer = answerAsPayments;
  });

  it('GET /orders/{id} shows the last declined attempt while the customer may try another card', async () => {
    const orderId = await waitingWithoutStoredSecret('cust-declined');
    const lastError = {
      code: 'card_declined',
      declineCode: 'generic_decline',
      message: 'Your card was declined.',
    };
    paymentsAnswer = () => ({ clientSecret: 'pi_routes_secret_again', lastError });
    const answer = await call(
      getOrder,
      { sub: 'cust-declined' },
      { method: 'GET', path: `/orders/${orderId}`, orderId },
    );
    expect(answer.body.payment).toEqual({
      paymentIntentId: 'pi_routes',
      status: 'requires_payment_method',
      clientSecret: 'pi_routes_secret_again',
      lastError,
    });
    // The back office sees the decline too, not the secret.
    const admin = await call(
      getOrder,
      { admin: 'ops-1' },
      { method: 'GET', path: `/orders/${orderId}`, orderId },
    );
    expect(admin.body.payment).toEqual({
      paymentIntentId: 'pi_routes',
      status: 'requires_payment_method',
      lastError,
    });
    paymentsAnswer = answerAsPayments;
  });

  it("GET /orders/{id} shows it to the order's customer and to callers without a JWT authorizer only", async () => {
    const { orderId } = await waitingForPayment('cust-owner');
    const get = (caller: Caller) =>
      call(getOrder, caller, { method: 'GET', path: `/orders/${orderId}`, orderId });

    expect((await get({ sub: 'cust-owner' })).body.payment).toEqual(intent);
    expect((await get('no authorizer')).body.payment).toEqual(intent);
    // A shop admin sees the order, but not the secret with which anyone could pay it.
    const admin = await get({ admin: 'ops-1' });
    expect(admin.status).toBe(200);
    expect(admin.body.payment).toEqual({ paymentIntentId: 'pi_routes', status: 'requires_payment_method' });
  });

  it('POST /orders replayed with its Idempotency-Key shows it to the customer', async () => {
    const { request } = await waitingForPayment('cust-replay');
    expect((await call(createOrder, { sub: 'cust-replay' }, request)).body.payment).toEqual(intent);
  });

  it('is gone once the customer asked to cancel, from the cancel answer on', async () => {
    const { orderId } = await waitingForPayment('cust-cancels');
    paymentsAnswer = answerAsPayments;
    paymentsAsked.length = 0;

    const cancelled = await call(
      cancelOrder,
      { sub: 'cust-cancels' },
      {
        method: 'POST',
        path: `/orders/${orderId}/cancel`,
        orderId,
      },
    );
    expect(cancelled.status).toBe(202);
    expect(cancelled.body.payment).toEqual({
      paymentIntentId: 'pi_routes',
      status: 'requires_payment_method',
    });
    const after = await call(
      getOrder,
      { sub: 'cust-cancels' },
      { method: 'GET', path: `/orders/${orderId}`, orderId },
    );
    expect(after.body.payment).not.toHaveProperty('clientSecret');
    // The payment was canceled at Stripe first, so the waiting saga hears it at once.
    expect(paymentsAsked).toEqual([
      { functionName: 'CustomerPayment', payload: { action: 'cancel', orderId } },
    ]);
  });

  it('a cancel that loses the race with the payment is 409 ORDER_NOT_CANCELLABLE and records nothing', async () => {
    const { orderId } = await waitingForPayment('cust-late');
    paymentsAnswer = () => ({ outcome: 'paid' });

    const answer = await call(
      cancelOrder,
      { sub: 'cust-late' },
      { method: 'POST', path: `/orders/${orderId}/cancel`, orderId },
    );
    expect(answer.status).toBe(409);
    expect(answer.body).toMatchObject({ error: { code: 'ORDER_NOT_CANCELLABLE' } });
    expect((await orders.get(orderId))?.cancelRequestedAt).toBeUndefined();
    paymentsAnswer = answerAsPayments;
  });
});

describe("a customer's orders are theirs alone", () => {
  const get = (caller: Caller, orderId: string) =>
    call(getOrder, caller, { method: 'GET', path: `/orders/${orderId}`, orderId });
  const cancel = (caller: Caller, orderId: string) =>
    call(cancelOrder, caller, { method: 'POST', path: `/orders/${orderId}/cancel`, orderId });
  const place = (caller: Caller, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
    call(createOrder, caller, { method: 'POST', path: '/orders', body, headers });
  const items = [{ sku: 'SKU-OWN', quantity: 1 }];

  it("takes the customer from the token's sub: the body may leave it out, or must name the same one", async () => {
    const implicit = await place({ sub: 'cust-sub' }, { items });
    expect(implicit.status).toBe(202);
    expect(implicit.body.customerId).toBe('cust-sub');
    expect((await orders.get(implicit.body.orderId))?.customerId).toBe('cust-sub');
    const explicit = await place({ sub: 'cust-sub' }, { customerId: 'cust-sub', items });
    expect(explicit.status).toBe(202);
  });

  it('refuses a body customerId that is not the token sub with 403 CUSTOMER_MISMATCH, and places nothing', async () => {
    const key = randomUUID();
    const answer = await place(
      { sub: 'cust-a' },
      { customerId: 'cust-b', items },
      { 'idempotency-key': key },
    );
    expect(answer.status).toBe(403);
    expect(answer.body.error).toEqual({
      code: 'CUSTOMER_MISMATCH',
      message: 'An order can only be placed for the customer the token names.',
      details: [],
    });
    // The key was not spent: the right request with it places the order.
    const placed = await place(
      { sub: 'cust-a' },
      { customerId: 'cust-a', items },
      { 'idempotency-key': key },
    );
    expect(placed.status).toBe(202);
    expect((await place('token without sub', { items })).status).toBe(403);
  });

  it("answers 404 for another customer's order, exactly as for an unknown one, on GET and on cancel", async () => {
    const mine = await place({ sub: 'cust-owner-2' }, { items });
    const { orderId } = mine.body;
    const unknown = randomUUID();

    const theirs = await get({ sub: 'cust-snoop' }, orderId);
    const missing = await get({ sub: 'cust-snoop' }, unknown);
    expect(theirs.status).toBe(404);
    expect(missing.status).toBe(404);
    expect(theirs.body.error?.code).toBe('ORDER_NOT_FOUND');
    // The same words as for an unknown id, the id aside: nothing tells the two apart.
    expect(theirs.body.error?.message.replace(orderId, 'ID')).toBe(
      missing.body.error?.message.replace(unknown, 'ID'),
    );
    expect((await get('token without sub', orderId)).status).toBe(404);

    const refused = await cancel({ sub: 'cust-snoop' }, orderId);
    expect(refused.status).toBe(404);
    expect(refused.body.error?.code).toBe('ORDER_NOT_FOUND');
    expect((await orders.get(orderId))?.cancelRequestedAt).toBeUndefined();

    expect((await get({ sub: 'cust-owner-2' }, orderId)).status).toBe(200);
    expect((await cancel({ sub: 'cust-owner-2' }, orderId)).status).toBe(202);
  });

  it('gives the back office (admin scope, IAM, or no authorizer) every order', async () => {
    const { orderId } = (await place({ sub: 'cust-bo' }, { items })).body;
    for (const caller of [{ admin: 'ops-1' }, 'no authorizer'] as const) {
      const answer = await get(caller, orderId);
      expect(answer.status, JSON.stringify(caller)).toBe(200);
      expect(answer.body.customerId).toBe('cust-bo');
    }
    // The back office places orders for a customer it names, and must name one.
    const forCustomer = await place({ admin: 'ops-1' }, { customerId: 'cust-phone', items });
    expect(forCustomer.status).toBe(202);
    expect(forCustomer.body.customerId).toBe('cust-phone');
    const unnamed = await place({ admin: 'ops-1' }, { items });
    expect(unnamed.status).toBe(400);
    expect(unnamed.body.error).toMatchObject({ code: 'VALIDATION_FAILED' });
  });

  it('scopes an Idempotency-Key to its customer: the same key from two customers is two orders', async () => {
    const key = randomUUID();
    const first = await place({ sub: 'cust-k1' }, { items }, { 'idempotency-key': key });
    const second = await place({ sub: 'cust-k2' }, { items }, { 'idempotency-key': key });
    expect([first.status, second.status]).toEqual([202, 202]);
    expect(second.body.orderId).not.toBe(first.body.orderId);
    expect(second.body.customerId).toBe('cust-k2');
    // Each customer's repeat finds their own order; another body with the key is still refused.
    expect((await place({ sub: 'cust-k1' }, { items }, { 'idempotency-key': key })).body.orderId).toBe(
      first.body.orderId,
    );
    const reused = await place(
      { sub: 'cust-k2' },
      { items: [{ sku: 'SKU-OWN', quantity: 2 }] },
      { 'idempotency-key': key },
    );
    expect(reused.status).toBe(409);
    expect(reused.body.error?.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });
});
