import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_LOCAL_JWT_SECRET,
  LOCAL_JWT_AUDIENCE,
  LOCAL_JWT_ISSUER,
  signLocalToken,
} from '../../infra/local/auth.ts';
import type { LocalRuntime } from '../../infra/local/runtime.ts';
import { pollUntil } from '../support/poll.ts';
import { startTestRuntime } from '../support/target.ts';

/*
 * LOCAL_AUTH=jwt end to end: the local gateway enforces the stack's JWT authorizer (synthesized with
 * the local issuer), and the handlers' ownership rules run on the claims it hands them, as on AWS.
 */

let runtime: LocalRuntime;
const secret = DEFAULT_LOCAL_JWT_SECRET;
let customer1: string;
let customer2: string;
let admin: string;

beforeAll(async () => {
  runtime = await startTestRuntime({ config: { LOCAL_AUTH: 'jwt' } });
  [customer1, customer2, admin] = await Promise.all([
    signLocalToken({ secret, sub: 'cust-jwt-1' }),
    signLocalToken({ secret, sub: 'cust-jwt-2' }),
    signLocalToken({ secret, sub: 'ops-jwt', admin: true }),
  ]);
});

afterAll(async () => {
  await runtime?.stop();
});

/** The fields these tests read, of whichever body a route answers. */
interface Answer {
  message?: string;
  status?: string;
  orderId?: string;
  customerId?: string;
  available?: number;
  items?: unknown[];
  error?: { code: string; message: string };
}

async function api(
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const response = await fetch(`${runtime.apiUrl}${path}`, {
    method,
    headers: {
      ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
      ...options.headers,
    },
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as Answer };
}

async function product(available = 10) {
  const sku = `sku-${randomUUID().slice(0, 8)}`;
  const put = await api('PUT', `/products/${sku}`, {
    token: admin,
    body: { name: sku, unitPrice: 500, currency: 'usd', available },
  });
  expect(put.status).toBe(200);
  return sku;
}

describe('LOCAL_AUTH=jwt', () => {
  it('keeps health and the webhook public', async () => {
    expect(await api('GET', '/health')).toEqual({ status: 200, body: { status: 'ok' } });
    // Not 401: the webhook checks Stripe's signature, not a token.
    const webhook = await api('POST', '/payments/webhook', { body: {} });
    expect(webhook.status).toBe(400);
    expect(webhook.body.error?.code).toBe('MISSING_SIGNATURE');
  });

  it('answers 401 without a token, with an expired one and with one signed by another key', async () => {
    const expired = await signLocalToken({ secret, sub: 'cust-jwt-1', expiresIn: '1s' });
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('cust-jwt-1')
      .setIssuer(LOCAL_JWT_ISSUER)
      .setAudience(LOCAL_JWT_AUDIENCE)
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode('not-the-local-secret-but-long-enough-to-sign'));
    const body = { items: [{ sku: 'x', quantity: 1 }] };
    for (const token of [undefined, expired, forged]) {
      const answer = await api('POST', '/orders', { ...(token ? { token } : {}), body });
      expect(answer).toEqual({ status: 401, body: { message: 'Unauthorized' } });
    }
    expect((await api('GET', `/orders/${randomUUID()}`)).status).toBe(401);
  });

  it("answers 403 to a customer's token on the product and reservation routes", async () => {
    const sku = await product();
    for (const [method, path] of [
      ['GET', `/products/${sku}`],
      ['PUT', `/products/${sku}`],
      ['GET', `/inventory/reservations?sku=${sku}`],
    ] as const) {
      const answer = await api(method, path, {
        token: customer1,
        ...(method === 'PUT' ? { body: { name: 'x', unitPrice: 1, currency: 'usd', available: 999 } } : {}),
      });
      expect(answer, `${method} ${path}`).toEqual({ status: 403, body: { message: 'Forbidden' } });
    }
    // The refused PUT changed nothing.
    expect((await api('GET', `/products/${sku}`, { token: admin })).body.available).toBe(10);
  });

  it("runs a customer's order to completion, and shows it to nobody else but the back office", async () => {
    const sku = await product();
    const placed = await api('POST', '/orders', {
      token: customer1,
      body: { items: [{ sku, quantity: 2 }], paymentMethodId: 'pm_card_visa' },
    });
    expect(placed.status).toBe(202);
    expect(placed.body.customerId).toBe('cust-jwt-1');
    const { orderId } = placed.body as { orderId: string };

    const done = await pollUntil(
      `order ${orderId}`,
      async () => (await api('GET', `/orders/${orderId}`, { token: customer1 })).body,
      (order: Answer) => order.status === 'COMPLETED' || order.status === 'CANCELLED',
      30_000,
    );
    expect(done.status).toBe('COMPLETED');

    const snooping = await api('GET', `/orders/${orderId}`, { token: customer2 });
    const unknown = await api('GET', `/orders/${randomUUID()}`, { token: customer2 });
    expect(snooping.status).toBe(404);
    expect(unknown.status).toBe(404);
    expect(snooping.body.error?.code).toBe(unknown.body.error?.code);
    expect((await api('POST', `/orders/${orderId}/cancel`, { token: customer2 })).status).toBe(404);

    const backOffice = await api('GET', `/orders/${orderId}`, { token: admin });
    expect(backOffice.status).toBe(200);
    expect(backOffice.body).toMatchObject({ orderId, customerId: 'cust-jwt-1', status: 'COMPLETED' });
    // The stock was sold to the customer of the token.
    expect((await api('GET', `/products/${sku}`, { token: admin })).body).toMatchObject({
      available: 8,
      reserved: 0,
    });
  });

  it('refuses an order for another customer than the token names (403) and places nothing', async () => {
    const sku = await product();
    const answer = await api('POST', '/orders', {
      token: customer1,
      body: { customerId: 'cust-jwt-2', items: [{ sku, quantity: 1 }] },
    });
    expect(answer.status).toBe(403);
    expect(answer.body.error?.code).toBe('CUSTOMER_MISMATCH');
    const reservations = await api('GET', `/inventory/reservations?sku=${sku}`, { token: admin });
    expect(reservations.body.items).toEqual([]);
  });

  it("keeps two customers' equal Idempotency-Keys apart: two orders, each customer's own", async () => {
    const sku = await product();
    const key = randomUUID();
    const body = { items: [{ sku, quantity: 1 }] };
    const headers = { 'idempotency-key': key };
    const first = await api('POST', '/orders', { token: customer1, body, headers });
    const second = await api('POST', '/orders', { token: customer2, body, headers });
    const repeat = await api('POST', '/orders', { token: customer2, body, headers });
    expect([first.status, second.status, repeat.status]).toEqual([202, 202, 202]);
    expect(second.body.orderId).not.toBe(first.body.orderId);
    expect(repeat.body.orderId).toBe(second.body.orderId);
    expect([first.body.customerId, second.body.customerId]).toEqual(['cust-jwt-1', 'cust-jwt-2']);
  });
});
