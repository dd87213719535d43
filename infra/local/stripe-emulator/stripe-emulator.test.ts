import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import Stripe from 'stripe';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { STRIPE_MAXIMUM_CHARGE, STRIPE_MINIMUM_CHARGE } from '../../../functions/payments/stripe-limits.ts';
import { faultInjector, type FaultContext, type FaultName, type FaultSpec } from '../faults.ts';
import { startStripeEmulator, type StripeEmulator, type StripeEmulatorOptions } from './index.ts';

const SECRET = 'whsec_emulator_test_secret';

interface Delivery {
  readonly body: string;
  readonly headers: IncomingHttpHeaders;
  readonly event: Stripe.Event;
  /** performance.now() when it arrived. */
  readonly at: number;
}

interface Receiver {
  readonly url: string;
  readonly deliveries: Delivery[];
  close(): Promise<void>;
}

/**
 * A webhook endpoint on 127.0.0.1; `answer` picks the HTTP status for the n-th delivery (0-based), or
 * a negative number to drop the connection without answering.
 */
async function startReceiver(
  answer: (delivery: Delivery, n: number) => number = () => 200,
): Promise<Receiver> {
  const deliveries: Delivery[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const delivery = {
        body,
        headers: req.headers,
        event: JSON.parse(body) as Stripe.Event,
        at: performance.now(),
      };
      deliveries.push(delivery);
      const status = answer(delivery, deliveries.length - 1);
      if (status < 0) {
        req.socket.destroy();
        return;
      }
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhooks`,
    deliveries,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function waitFor<T>(probe: () => T | undefined | false, what: string, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function clientFor(emulator: StripeEmulator, apiKey = 'sk_test_emulator'): Stripe {
  return new Stripe(apiKey, {
    host: emulator.host,
    port: emulator.port,
    protocol: 'http',
    maxNetworkRetries: 0,
  });
}

function signature(delivery: Delivery): string {
  const header = delivery.headers['stripe-signature'];
  if (typeof header !== 'string') throw new Error('delivery without a Stripe-Signature header');
  return header;
}

function typesFor(receiver: Receiver, objectId: string): string[] {
  return receiver.deliveries
    .filter((d) => (d.event.data.object as { id?: string; payment_intent?: string }).id === objectId)
    .map((d) => d.event.type);
}

async function rejectionOf(promise: Promise<unknown>): Promise<Stripe.errors.StripeError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Stripe.errors.StripeError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Harness {
  emulator: StripeEmulator;
  receiver: Receiver;
  stripe: Stripe;
}

async function setUp(
  options: { answer?: Parameters<typeof startReceiver>[0] } & Partial<StripeEmulatorOptions> = {},
): Promise<Harness> {
  const receiver = await startReceiver(options.answer);
  cleanups.push(() => receiver.close());
  const emulator = await startStripeEmulator({
    webhookSecret: SECRET,
    webhookUrl: receiver.url,
    webhookRetry: { maxAttempts: 4, baseDelayMs: 20 },
    ...options,
  });
  cleanups.push(() => emulator.close());
  return { emulator, receiver, stripe: clientFor(emulator) };
}

describe('payment outcomes by test payment method', () => {
  it('pm_card_visa succeeds, records a charge and sends created then succeeded', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({
      amount: 4200,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
      metadata: { orderId: 'ord-1' },
      description: 'order ord-1',
      allowed_payment_method_types: ['card'],
    });

    expect(intent).toMatchObject({
      object: 'payment_intent',
      status: 'succeeded',
      amount: 4200,
      amount_received: 4200,
      currency: 'usd',
      metadata: { orderId: 'ord-1' },
      description: 'order ord-1',
      allowed_payment_method_types: ['card'],
      payment_method_types: ['card'],
      livemode: false,
      last_payment_error: null,
      cancellation_reason: null,
      canceled_at: null,
    });
    expect(intent.id).toMatch(/^pi_\w+$/);
    expect(intent.client_secret).toMatch(new RegExp(`^${intent.id}_secret_\\w+$`));
    expect(intent.latest_charge).toMatch(/^ch_\w+$/);
    expect(intent.payment_method).toMatch(/^pm_\w+$/);

    await emulator.idle();
    expect(typesFor(receiver, intent.id)).toEqual(['payment_intent.created', 'payment_intent.succeeded']);
    const succeeded = receiver.deliveries[1]?.event;
    expect(succeeded).toMatchObject({
      object: 'event',
      livemode: false,
      pending_webhooks: 1,
      data: { object: { id: intent.id, status: 'succeeded', amount_received: 4200 } },
    });
    expect(succeeded?.id).toMatch(/^evt_\w+$/);
    expect(receiver.deliveries[0]?.event.data.object).toMatchObject({ status: 'requires_confirmation' });

    const fetched = await stripe.paymentIntents.retrieve(intent.id);
    expect(fetched).toEqual({ ...intent });
  });

  it.each([
    ['pm_card_chargeDeclined', 'generic_decline', 'Your card was declined.'],
    ['pm_card_chargeDeclinedInsufficientFunds', 'insufficient_funds', 'Your card has insufficient funds.'],
  ])(
    '%s answers 402 and the SDK throws StripeCardError (%s)',
    async (paymentMethod, declineCode, message) => {
      const { emulator, receiver, stripe } = await setUp();
      const error = await rejectionOf(
        stripe.paymentIntents.create({
          amount: 1000,
          currency: 'eur',
          payment_method: paymentMethod,
          confirm: true,
        }),
      );

      expect(error).toBeInstanceOf(Stripe.errors.StripeCardError);
      expect(error).toMatchObject({
        statusCode: 402,
        code: 'card_declined',
        decline_code: declineCode,
        message,
      });
      const declined = error.payment_intent;
      expect(declined).toMatchObject({
        status: 'requires_payment_method',
        payment_method: null,
        last_payment_error: { type: 'card_error', code: 'card_declined', decline_code: declineCode, message },
      });
      if (!declined) throw new Error('no payment_intent on the card error');

      const fetched = await stripe.paymentIntents.retrieve(declined.id);
      expect(fetched.status).toBe('requires_payment_method');
      expect(fetched.last_payment_error?.decline_code).toBe(declineCode);
      expect(fetched.amount_received).toBe(0);

      await emulator.idle();
      expect(typesFor(receiver, declined.id)).toEqual([
        'payment_intent.created',
        'payment_intent.payment_failed',
      ]);
      expect(receiver.deliveries[1]?.event.data.object).toMatchObject({
        last_payment_error: { decline_code: declineCode },
      });
    },
  );

  it('pm_card_authenticationRequired leaves the intent in requires_action', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({
      amount: 500,
      currency: 'usd',
      payment_method: 'pm_card_authenticationRequired',
      confirm: true,
    });

    expect(intent.status).toBe('requires_action');
    expect(intent.next_action?.type).toBe('use_stripe_sdk');
    await emulator.idle();
    expect(typesFor(receiver, intent.id)).not.toContain('payment_intent.payment_failed');
    expect(typesFor(receiver, intent.id)).not.toContain('payment_intent.succeeded');
  });

  it('without a payment method the intent waits; confirming later with pm_card_visa succeeds', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({ amount: 700, currency: 'gbp' });
    expect(intent.status).toBe('requires_payment_method');
    expect(intent.payment_method).toBeNull();

    const noMethod = await rejectionOf(stripe.paymentIntents.confirm(intent.id));
    expect(noMethod).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(noMethod.code).toBe('payment_intent_unexpected_state');

    const confirmed = await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    expect(confirmed).toMatchObject({ status: 'succeeded', amount_received: 700 });
    await emulator.idle();
    expect(typesFor(receiver, intent.id)).toEqual(['payment_intent.created', 'payment_intent.succeeded']);
  });

  it('a declined intent can be retried with another payment method', async () => {
    const { stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({ amount: 900, currency: 'usd' });
    await rejectionOf(stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_chargeDeclined' }));
    const retried = await stripe.paymentIntents.confirm(intent.id, { payment_method: 'pm_card_visa' });
    expect(retried).toMatchObject({ status: 'succeeded', last_payment_error: null });
  });

  it('an unknown payment method is a 400 resource_missing on payment_method', async () => {
    const { stripe } = await setUp();
    const error = await rejectionOf(
      stripe.paymentIntents.create({
        amount: 100,
        currency: 'usd',
        payment_method: 'pm_card_mastercard',
        confirm: true,
      }),
    );
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error).toMatchObject({ statusCode: 400, code: 'resource_missing', param: 'payment_method' });
  });
});

describe('requests', () => {
  it('requires a test secret key, answering 401 in Stripe’s error shape', async () => {
    const { emulator } = await setUp();
    const bare = await fetch(`${emulator.url}/v1/payment_intents/pi_x`);
    expect(bare.status).toBe(401);
    expect(await bare.json()).toMatchObject({
      error: { type: 'invalid_request_error', message: expect.any(String) },
    });

    const live = await rejectionOf(clientFor(emulator, 'sk_live_nope').paymentIntents.retrieve('pi_x'));
    expect(live).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(live.statusCode).toBe(401);
  });

  it('answers a body over 1 MiB with 400 invalid_request_error, before looking at the key', async () => {
    const { emulator } = await setUp();
    const body = `description=${'a'.repeat(1024 * 1024)}`;
    for (const headers of [{ Authorization: 'Bearer sk_test_emulator' }, {}]) {
      const answer = await fetch(`${emulator.url}/v1/payment_intents`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
        body,
      });
      expect(answer.status).toBe(400);
      expect(await answer.json()).toEqual({
        error: { type: 'invalid_request_error', message: 'Request body too large.' },
      });
    }
    const list = await clientFor(emulator).paymentIntents.list();
    expect(list.data).toEqual([]);
  });

  it('lets a publishable key retrieve and confirm an intent with its client secret, as Stripe.js does, and nothing else', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({ amount: 1200, currency: 'usd' });
    const browser = clientFor(emulator, 'pk_test_shop');

    const read = await browser.paymentIntents.retrieve(intent.id, { client_secret: intent.client_secret! });
    expect(read).toMatchObject({ id: intent.id, status: 'requires_payment_method' });
    const wrongSecret = await rejectionOf(
      browser.paymentIntents.confirm(intent.id, {
        payment_method: 'pm_card_visa',
        client_secret: `${intent.id}_secret_guessed`,
      } as Stripe.PaymentIntentConfirmParams),
    );
    expect(wrongSecret).toMatchObject({ statusCode: 404, code: 'resource_missing' });
    const noSecret = await rejectionOf(browser.paymentIntents.retrieve(intent.id));
    expect(noSecret).toMatchObject({ statusCode: 404, code: 'resource_missing' });
    const secretKeyOnly = await rejectionOf(browser.paymentIntents.cancel(intent.id));
    expect(secretKeyOnly).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect(secretKeyOnly.statusCode).toBe(401);
    expect((await stripe.paymentIntents.retrieve(intent.id)).status).toBe('requires_payment_method');

    const confirmed = await browser.paymentIntents.confirm(intent.id, {
      payment_method: 'pm_card_visa',
      client_secret: intent.client_secret!,
    } as Stripe.PaymentIntentConfirmParams);
    expect(confirmed).toMatchObject({ status: 'succeeded', amount_received: 1200 });
    await emulator.idle();
    expect(typesFor(receiver, intent.id)).toEqual(['payment_intent.created', 'payment_intent.succeeded']);
  });

  it('a browser confirm with a declining card leaves the intent for another card, as Stripe does; the next one succeeds', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({ amount: 1800, currency: 'usd' });
    const browser = clientFor(emulator, 'pk_test_shop');
    const confirmWith = (paymentMethod: string) =>
      browser.paymentIntents.confirm(intent.id, {
        payment_method: paymentMethod,
        client_secret: intent.client_secret!,
      } as Stripe.PaymentIntentConfirmParams);

    const declined = await rejectionOf(confirmWith('pm_card_chargeDeclined'));
    expect(declined).toBeInstanceOf(Stripe.errors.StripeCardError);
    expect(declined).toMatchObject({
      statusCode: 402,
      code: 'card_declined',
      decline_code: 'generic_decline',
    });
    expect(declined.payment_intent).toMatchObject({ id: intent.id, status: 'requires_payment_method' });
    expect(await stripe.paymentIntents.retrieve(intent.id)).toMatchObject({
      status: 'requires_payment_method',
      payment_method: null,
      amount_received: 0,
      last_payment_error: {
        type: 'card_error',
        code: 'card_declined',
        decline_code: 'generic_decline',
        message: 'Your card was declined.',
      },
    });

    const paid = await confirmWith('pm_card_visa');
    expect(paid).toMatchObject({ status: 'succeeded', amount_received: 1800, last_payment_error: null });
    expect(await stripe.paymentIntents.retrieve(intent.id)).toMatchObject({
      status: 'succeeded',
      last_payment_error: null,
    });

    await emulator.idle();
    expect(typesFor(receiver, intent.id)).toEqual([
      'payment_intent.created',
      'payment_intent.payment_failed',
      'payment_intent.succeeded',
    ]);
    // Each event carries the intent as it was when it happened.
    const objects = receiver.deliveries
      .filter((delivery) => (delivery.event.data.object as { id?: string }).id === intent.id)
      .map((delivery) => delivery.event.data.object as Stripe.PaymentIntent);
    expect(objects[1]).toMatchObject({
      status: 'requires_payment_method',
      last_payment_error: { code: 'card_declined', decline_code: 'generic_decline' },
    });
    expect(objects[2]).toMatchObject({ status: 'succeeded', last_payment_error: null });
  });

  it('validates amount and currency, naming the param', async () => {
    const { stripe } = await setUp();
    const cases: Array<[Stripe.PaymentIntentCreateParams, string]> = [
      [{ currency: 'usd' } as Stripe.PaymentIntentCreateParams, 'amount'],
      [{ amount: 0, currency: 'usd' }, 'amount'],
      [{ amount: 10, currency: 'xyz' }, 'currency'],
      [{ amount: 10 } as Stripe.PaymentIntentCreateParams, 'currency'],
    ];
    for (const [params, param] of cases) {
      const error = await rejectionOf(stripe.paymentIntents.create(params));
      expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
      expect(error).toMatchObject({ statusCode: 400, rawType: 'invalid_request_error', param });
    }
  });

  it('answers 404 resource_missing for unknown ids', async () => {
    const { stripe } = await setUp();
    for (const call of [
      stripe.paymentIntents.retrieve('pi_missing'),
      stripe.refunds.retrieve('re_missing'),
    ]) {
      const error = await rejectionOf(call);
      expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
      expect(error).toMatchObject({ statusCode: 404, code: 'resource_missing' });
    }
  });

  it('parses bracket notation, including [] arrays, and merges metadata on update', async () => {
    const { emulator, stripe } = await setUp();
    const response = await fetch(`${emulator.url}/v1/payment_intents`, {
      method: 'POST',
      headers: { Authorization: 'Bearer sk_test_raw', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'amount=1500&currency=USD&payment_method_types[]=card&metadata[orderId]=ord%2042&metadata[note]=a%26b%3Dc&metadata[0]=zero',
    });
    expect(response.status).toBe(200);
    const created = (await response.json()) as Stripe.PaymentIntent;
    expect(created).toMatchObject({
      amount: 1500,
      currency: 'usd',
      payment_method_types: ['card'],
      metadata: { orderId: 'ord 42', note: 'a&b=c', '0': 'zero' },
    });

    const updated = await stripe.paymentIntents.update(created.id, { metadata: { note: '', sagaId: 's-1' } });
    expect(updated.metadata).toEqual({ orderId: 'ord 42', '0': 'zero', sagaId: 's-1' });
  });
});

describe('idempotency', () => {
  it('replays the stored answer for the same key and parameters, without a second webhook', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const params = { amount: 2500, currency: 'usd', payment_method: 'pm_card_visa', confirm: true };
    const first = await stripe.paymentIntents.create(params, { idempotencyKey: 'order-7-attempt-1' });
    const second = await stripe.paymentIntents.create(params, { idempotencyKey: 'order-7-attempt-1' });

    expect(second.id).toBe(first.id);
    expect(second).toEqual({ ...first });
    expect(second.lastResponse.headers['idempotent-replayed']).toBe('true');
    expect(first.lastResponse.headers['idempotent-replayed']).toBeUndefined();

    await emulator.idle();
    expect(receiver.deliveries.map((d) => d.event.type)).toEqual([
      'payment_intent.created',
      'payment_intent.succeeded',
    ]);
    expect(receiver.deliveries[0]?.event.request).toEqual({
      id: first.lastResponse.requestId,
      idempotency_key: 'order-7-attempt-1',
    });
  });

  it('replays a card decline as the same 402', async () => {
    const { stripe } = await setUp();
    const params = { amount: 300, currency: 'usd', payment_method: 'pm_card_chargeDeclined', confirm: true };
    const first = await rejectionOf(stripe.paymentIntents.create(params, { idempotencyKey: 'decline-key' }));
    const second = await rejectionOf(stripe.paymentIntents.create(params, { idempotencyKey: 'decline-key' }));
    expect(second).toBeInstanceOf(Stripe.errors.StripeCardError);
    expect(second.payment_intent?.id).toBe(first.payment_intent?.id);
    expect(second.headers?.['idempotent-replayed']).toBe('true');
  });

  it('rejects the same key with other parameters or on another endpoint', async () => {
    const { stripe } = await setUp();
    const intent = await stripe.paymentIntents.create(
      { amount: 100, currency: 'usd' },
      { idempotencyKey: 'k-1' },
    );

    const otherParams = await rejectionOf(
      stripe.paymentIntents.create({ amount: 101, currency: 'usd' }, { idempotencyKey: 'k-1' }),
    );
    expect(otherParams).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect(otherParams.statusCode).toBe(400);

    const otherEndpoint = await rejectionOf(
      stripe.paymentIntents.cancel(intent.id, {}, { idempotencyKey: 'k-1' }),
    );
    expect(otherEndpoint).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect((await stripe.paymentIntents.retrieve(intent.id)).status).toBe('requires_payment_method');
  });

  it('does not remember a validation failure under the key', async () => {
    const { stripe } = await setUp();
    await rejectionOf(
      stripe.paymentIntents.create({ amount: 0, currency: 'usd' }, { idempotencyKey: 'k-2' }),
    );
    const intent = await stripe.paymentIntents.create(
      { amount: 500, currency: 'usd' },
      { idempotencyKey: 'k-2' },
    );
    expect(intent.amount).toBe(500);
  });

  it('a refund of a pm_card_refundFail charge is created succeeded, then fails: refund.failed, the charge refundable again', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({
      amount: 1800,
      currency: 'usd',
      payment_method: 'pm_card_refundFail',
      confirm: true,
    });
    expect(intent.status).toBe('succeeded');

    const created = await stripe.refunds.create({
      payment_intent: intent.id,
      metadata: { orderId: 'order-rf' },
    });
    expect(created.status).toBe('succeeded');
    expect(await stripe.refunds.retrieve(created.id)).toMatchObject({
      status: 'failed',
      failure_reason: 'expired_or_canceled_card',
    });
    await emulator.idle();
    const failed = receiver.deliveries.find((d) => d.event.type === 'refund.failed');
    expect(failed?.event.data.object).toMatchObject({
      id: created.id,
      status: 'failed',
      payment_intent: intent.id,
      metadata: { orderId: 'order-rf' },
    });
    expect(typesFor(receiver, created.id)).toEqual(['refund.created', 'refund.failed']);
    // The money is back with the merchant: the charge can be refunded again (and fails again).
    const second = await stripe.refunds.create({ payment_intent: intent.id });
    expect(second.id).not.toBe(created.id);
  });

  it('refunds once per key: a repeat returns the same refund and sends no second charge.refunded', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({
      amount: 1500,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    const params = { payment_intent: intent.id, metadata: { orderId: 'order-9' } };
    const first = await stripe.refunds.create(params, { idempotencyKey: 'order-9-refund' });
    const again = await stripe.refunds.create(params, { idempotencyKey: 'order-9-refund' });

    expect(again.id).toBe(first.id);
    expect(again.lastResponse.headers['idempotent-replayed']).toBe('true');
    const otherParams = await rejectionOf(
      stripe.refunds.create({ ...params, amount: 100 }, { idempotencyKey: 'order-9-refund' }),
    );
    expect(otherParams).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    await emulator.idle();
    expect(receiver.deliveries.filter((d) => d.event.type === 'charge.refunded')).toHaveLength(1);
    expect(receiver.deliveries.filter((d) => d.event.type === 'refund.created')).toHaveLength(1);
  });

  it('replays a state error stored under its key, even after the state changed', async () => {
    const { stripe } = await setUp();
    const paid = await stripe.paymentIntents.create({
      amount: 100,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    const first = await rejectionOf(stripe.paymentIntents.cancel(paid.id, {}, { idempotencyKey: 'c-1' }));
    const second = await rejectionOf(stripe.paymentIntents.cancel(paid.id, {}, { idempotencyKey: 'c-1' }));
    expect(first).toMatchObject({ statusCode: 400, code: 'payment_intent_unexpected_state' });
    expect(second).toMatchObject({ statusCode: 400, code: 'payment_intent_unexpected_state' });
    expect(second.headers?.['idempotent-replayed']).toBe('true');
  });

  it('replays a cancel under its key with the stored 200, not a second cancellation', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    const first = await stripe.paymentIntents.cancel(intent.id, {}, { idempotencyKey: 'order-3-cancel' });
    const again = await stripe.paymentIntents.cancel(intent.id, {}, { idempotencyKey: 'order-3-cancel' });
    expect(again).toEqual({ ...first });
    expect(again.lastResponse.headers['idempotent-replayed']).toBe('true');
    await emulator.idle();
    expect(typesFor(receiver, intent.id)).toEqual(['payment_intent.created', 'payment_intent.canceled']);
  });
});

describe('cancel', () => {
  it('cancels an open intent and sends payment_intent.canceled', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    const canceled = await stripe.paymentIntents.cancel(intent.id, { cancellation_reason: 'abandoned' });

    expect(canceled).toMatchObject({ status: 'canceled', cancellation_reason: 'abandoned' });
    expect(canceled.canceled_at).toEqual(expect.any(Number));
    await emulator.idle();
    expect(typesFor(receiver, intent.id)).toEqual(['payment_intent.created', 'payment_intent.canceled']);
  });

  it('cancels an intent waiting for authentication', async () => {
    const { stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({
      amount: 100,
      currency: 'usd',
      payment_method: 'pm_card_authenticationRequired',
      confirm: true,
    });
    expect((await stripe.paymentIntents.cancel(intent.id)).status).toBe('canceled');
  });

  it('refuses to cancel a succeeded or already canceled intent with payment_intent_unexpected_state', async () => {
    const { stripe } = await setUp();
    const paid = await stripe.paymentIntents.create({
      amount: 100,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    const open = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await stripe.paymentIntents.cancel(open.id);

    for (const id of [paid.id, open.id]) {
      const error = await rejectionOf(stripe.paymentIntents.cancel(id));
      expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
      expect(error).toMatchObject({ statusCode: 400, code: 'payment_intent_unexpected_state' });
    }
    const confirmCanceled = await rejectionOf(
      stripe.paymentIntents.confirm(open.id, { payment_method: 'pm_card_visa' }),
    );
    expect(confirmCanceled.code).toBe('payment_intent_unexpected_state');
  });
});

describe('refunds', () => {
  it('refunds in full by default and sends charge.refunded then refund.created', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({
      amount: 1200,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    const refund = await stripe.refunds.create({
      payment_intent: intent.id,
      metadata: { reason: 'saga-compensation' },
    });

    expect(refund).toMatchObject({
      object: 'refund',
      amount: 1200,
      currency: 'usd',
      status: 'succeeded',
      payment_intent: intent.id,
      charge: intent.latest_charge,
      metadata: { reason: 'saga-compensation' },
    });
    expect(refund.id).toMatch(/^re_\w+$/);
    expect(await stripe.refunds.retrieve(refund.id)).toEqual({ ...refund });

    await emulator.idle();
    const types = receiver.deliveries.map((d) => d.event.type);
    expect(types).toEqual([
      'payment_intent.created',
      'payment_intent.succeeded',
      'charge.refunded',
      'refund.created',
    ]);
    expect(receiver.deliveries[2]?.event.data.object).toMatchObject({
      object: 'charge',
      id: intent.latest_charge,
      amount_refunded: 1200,
      refunded: true,
    });
  });

  it('takes partial refunds up to what remains, then refuses', async () => {
    const { stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({
      amount: 1000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    expect((await stripe.refunds.create({ payment_intent: intent.id, amount: 400 })).amount).toBe(400);

    const tooMuch = await rejectionOf(stripe.refunds.create({ payment_intent: intent.id, amount: 700 }));
    expect(tooMuch).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(tooMuch).toMatchObject({ statusCode: 400, param: 'amount' });

    expect((await stripe.refunds.create({ payment_intent: intent.id })).amount).toBe(600);
    const nothingLeft = await rejectionOf(stripe.refunds.create({ payment_intent: intent.id, amount: 1 }));
    expect(nothingLeft).toMatchObject({ statusCode: 400, code: 'charge_already_refunded' });
  });

  it('refuses to refund an intent that has not succeeded', async () => {
    const { stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });
    const error = await rejectionOf(stripe.refunds.create({ payment_intent: intent.id }));
    expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(error).toMatchObject({ statusCode: 400, rawType: 'invalid_request_error' });

    const missing = await rejectionOf(stripe.refunds.create({ payment_intent: 'pi_missing' }));
    expect(missing).toMatchObject({ statusCode: 400, code: 'resource_missing', param: 'payment_intent' });
  });

  it("lists a PaymentIntent's refunds newest first in Stripe's list shape, paged by limit and starting_after", async () => {
    const { stripe } = await setUp();
    const paid = () =>
      stripe.paymentIntents.create({
        amount: 1000,
        currency: 'usd',
        payment_method: 'pm_card_visa',
        confirm: true,
      });
    const intent = await paid();
    const other = await paid();
    const first = await stripe.refunds.create({ payment_intent: intent.id, amount: 300 });
    const second = await stripe.refunds.create({ payment_intent: intent.id, amount: 200 });
    const third = await stripe.refunds.create({ payment_intent: intent.id });
    const elsewhere = await stripe.refunds.create({ payment_intent: other.id });

    const list = await stripe.refunds.list({ payment_intent: intent.id });
    expect(list).toMatchObject({ object: 'list', has_more: false, url: '/v1/refunds' });
    expect(list.data).toEqual([third, second, first]);

    const page = await stripe.refunds.list({ payment_intent: intent.id, limit: 2 });
    expect(page.data.map((refund) => refund.id)).toEqual([third.id, second.id]);
    expect(page.has_more).toBe(true);
    const rest = await stripe.refunds.list({
      payment_intent: intent.id,
      limit: 2,
      starting_after: second.id,
    });
    expect(rest.data.map((refund) => refund.id)).toEqual([first.id]);
    expect(rest.has_more).toBe(false);

    expect((await stripe.refunds.list({ charge: other.latest_charge as string })).data).toEqual([elsewhere]);
    expect((await stripe.refunds.list()).data.map((refund) => refund.id)).toEqual([
      elsewhere.id,
      third.id,
      second.id,
      first.id,
    ]);
    const none = await paid();
    expect(await stripe.refunds.list({ payment_intent: none.id })).toMatchObject({
      data: [],
      has_more: false,
    });

    const missing = await rejectionOf(stripe.refunds.list({ payment_intent: 'pi_missing' }));
    expect(missing).toMatchObject({ statusCode: 400, code: 'resource_missing', param: 'payment_intent' });
    const badLimit = await rejectionOf(stripe.refunds.list({ limit: 101 }));
    expect(badLimit).toMatchObject({ statusCode: 400, param: 'limit' });
  });
});

describe('webhooks', () => {
  it('are signed so that constructEvent accepts them with the secret and rejects another', async () => {
    const { emulator, receiver, stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await emulator.idle();

    const delivery = await waitFor(() => receiver.deliveries[0], 'a delivery');
    expect(delivery.headers['content-type']).toMatch(/^application\/json/);
    expect(signature(delivery)).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    const event = stripe.webhooks.constructEvent(delivery.body, signature(delivery), SECRET);
    expect(event).toMatchObject({ type: 'payment_intent.created', data: { object: { id: intent.id } } });
    expect(() => stripe.webhooks.constructEvent(delivery.body, signature(delivery), 'whsec_other')).toThrow(
      Stripe.errors.StripeSignatureVerificationError,
    );
    expect(() => stripe.webhooks.constructEvent(`${delivery.body} `, signature(delivery), SECRET)).toThrow(
      Stripe.errors.StripeSignatureVerificationError,
    );
  });

  it('carry one v1 signature per secret while a secret is rolled; each secret alone verifies them', async () => {
    const { emulator, receiver, stripe } = await setUp({ webhookSecret: `${SECRET}_new, ${SECRET}` });
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await emulator.idle();

    const delivery = await waitFor(() => receiver.deliveries[0], 'a delivery');
    expect(signature(delivery)).toMatch(/^t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$/);
    for (const secret of [`${SECRET}_new`, SECRET]) {
      expect(stripe.webhooks.constructEvent(delivery.body, signature(delivery), secret).id).toBe(
        delivery.event.id,
      );
    }
    expect(() => stripe.webhooks.constructEvent(delivery.body, signature(delivery), 'whsec_other')).toThrow(
      Stripe.errors.StripeSignatureVerificationError,
    );
  });

  it('back off exponentially: each wait doubles from baseDelayMs', async () => {
    const arrivals: number[] = [];
    const { emulator, receiver, stripe } = await setUp({
      answer: () => {
        arrivals.push(performance.now());
        return 500;
      },
      webhookRetry: { maxAttempts: 4, baseDelayMs: 80 },
    });
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await emulator.idle();

    expect(receiver.deliveries).toHaveLength(4);
    const waits = arrivals.slice(1).map((at, index) => at - (arrivals[index] ?? at));
    // Timers never fire early (allow 5 ms of clock rounding); a busy machine may make them late.
    expect(waits[0]).toBeGreaterThanOrEqual(80 - 5);
    expect(waits[1]).toBeGreaterThanOrEqual(160 - 5);
    expect(waits[2]).toBeGreaterThanOrEqual(320 - 5);
    expect(waits[2]!).toBeGreaterThan(waits[0]!);
  });

  it('are retried after 5xx answers with the same event id, each attempt validly signed', async () => {
    const { emulator, receiver, stripe } = await setUp({ answer: (_delivery, n) => (n < 2 ? 500 : 200) });
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await emulator.idle();

    expect(receiver.deliveries).toHaveLength(3);
    const ids = new Set(receiver.deliveries.map((d) => d.event.id));
    expect(ids.size).toBe(1);
    for (const delivery of receiver.deliveries) {
      expect(delivery.body).toBe(receiver.deliveries[0]?.body);
      expect(stripe.webhooks.constructEvent(delivery.body, signature(delivery), SECRET).id).toBe([...ids][0]);
    }
  });

  it('keep per-intent order: the next event waits until the previous one is answered 2xx', async () => {
    const { emulator, receiver, stripe } = await setUp({ answer: (_delivery, n) => (n < 2 ? 503 : 200) });
    await stripe.paymentIntents.create({
      amount: 100,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    await emulator.idle();
    expect(receiver.deliveries.map((d) => d.event.type)).toEqual([
      'payment_intent.created',
      'payment_intent.created',
      'payment_intent.created',
      'payment_intent.succeeded',
    ]);
  });

  it('give up after maxAttempts and move on to the next event', async () => {
    const { emulator, receiver, stripe } = await setUp({
      answer: (delivery) => (delivery.event.type === 'payment_intent.created' ? 500 : 200),
      webhookRetry: { maxAttempts: 2, baseDelayMs: 10 },
    });
    const intent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await stripe.paymentIntents.cancel(intent.id);
    await emulator.idle();
    expect(receiver.deliveries.map((d) => d.event.type)).toEqual([
      'payment_intent.created',
      'payment_intent.created',
      'payment_intent.canceled',
    ]);
  });

  it('are retried after a dropped connection', async () => {
    const { emulator, receiver, stripe } = await setUp({ answer: (_delivery, n) => (n === 0 ? -1 : 200) });
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await emulator.idle();
    expect(receiver.deliveries.map((d) => d.event.type)).toEqual([
      'payment_intent.created',
      'payment_intent.created',
    ]);
  });

  it('queue until a webhook URL is set', async () => {
    const receiver = await startReceiver();
    cleanups.push(() => receiver.close());
    const emulator = await startStripeEmulator({ webhookSecret: SECRET });
    cleanups.push(() => emulator.close());
    const stripe = clientFor(emulator);

    const intent = await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await stripe.paymentIntents.cancel(intent.id);
    let idle = false;
    void emulator.idle().then(() => (idle = true));
    await nextTurn();
    expect(idle).toBe(false);
    expect(receiver.deliveries).toHaveLength(0);

    emulator.setWebhookUrl(receiver.url);
    await emulator.idle();
    expect(receiver.deliveries.map((d) => d.event.type)).toEqual([
      'payment_intent.created',
      'payment_intent.canceled',
    ]);
  });

  it('close() cancels pending retries and leaves no timers behind', async () => {
    // Watch the emulator's own timers rather than counting every timer in the process: sockets, the
    // SDK and other tests start and stop timers of their own at any moment.
    const retryDelayMs = 300;
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const clearTimeoutSpy = vi.spyOn(globalThis, 'clearTimeout');
    onTestFinished(() => {
      setTimeoutSpy.mockRestore();
      clearTimeoutSpy.mockRestore();
    });
    const receiver = await startReceiver(() => 500);
    cleanups.push(() => receiver.close());
    const emulator = await startStripeEmulator({
      webhookSecret: SECRET,
      webhookUrl: receiver.url,
      webhookRetry: { maxAttempts: 5, baseDelayMs: retryDelayMs },
    });
    const stripe = clientFor(emulator);
    await stripe.paymentIntents.create({ amount: 100, currency: 'usd' });
    await waitFor(() => receiver.deliveries.length === 1, 'the first attempt');
    const retryTimer = await waitFor(() => {
      const index = setTimeoutSpy.mock.calls.findIndex((call) => call[1] === retryDelayMs);
      return index >= 0 ? setTimeoutSpy.mock.results[index]?.value : undefined;
    }, 'the retry to be scheduled');

    const idle = emulator.idle();
    await emulator.close();
    await idle;
    expect(clearTimeoutSpy.mock.calls.map((call) => call[0])).toContain(retryTimer);

    // Long enough for the retry to have fired had it not been cancelled; the receiver is still up.
    await new Promise((resolve) => setTimeout(resolve, retryDelayMs * 3));
    expect(receiver.deliveries).toHaveLength(1);
    await expect(emulator.close()).resolves.toBeUndefined();
  });
});

describe('amount limits', () => {
  it.each(Object.entries(STRIPE_MINIMUM_CHARGE))(
    'refuses a %s PaymentIntent below its minimum charge (%d) with amount_too_small, and takes the minimum',
    async (currency, minimum) => {
      const { stripe } = await setUp();
      const error = await rejectionOf(stripe.paymentIntents.create({ amount: minimum - 1, currency }));
      expect(error).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
      expect(error).toMatchObject({
        statusCode: 400,
        rawType: 'invalid_request_error',
        code: 'amount_too_small',
        param: 'amount',
        doc_url: 'https://stripe.com/docs/error-codes/amount-too-small',
      });
      expect(error.message).toMatch(new RegExp(`^Amount must be at least .+ ${currency}$`));
      expect((await stripe.paymentIntents.create({ amount: minimum, currency })).amount).toBe(minimum);
    },
  );

  it("words the minimum as Stripe does, in the currency's major unit", async () => {
    const { stripe } = await setUp();
    const usd = await rejectionOf(stripe.paymentIntents.create({ amount: 49, currency: 'usd' }));
    expect(usd.message).toBe('Amount must be at least $0.50 usd');
    const jpy = await rejectionOf(stripe.paymentIntents.create({ amount: 10, currency: 'jpy' }));
    expect(jpy.message).toBe('Amount must be at least ¥50 jpy');
  });

  it('takes any positive amount in a currency the table does not list', async () => {
    const { stripe } = await setUp();
    expect((await stripe.paymentIntents.create({ amount: 1, currency: 'isk' })).amount).toBe(1);
  });

  it(`refuses more than ${STRIPE_MAXIMUM_CHARGE} with amount_too_large, and takes exactly that`, async () => {
    const { stripe } = await setUp();
    const error = await rejectionOf(
      stripe.paymentIntents.create({ amount: STRIPE_MAXIMUM_CHARGE + 1, currency: 'usd' }),
    );
    expect(error).toMatchObject({ statusCode: 400, code: 'amount_too_large', param: 'amount' });
    expect(error.message).toBe('Amount must be no more than $999,999.99');
    const largest = await stripe.paymentIntents.create({ amount: STRIPE_MAXIMUM_CHARGE, currency: 'usd' });
    expect(largest.amount).toBe(STRIPE_MAXIMUM_CHARGE);
  });

  it('checks an update against the amount and currency it would leave, changing nothing when refused', async () => {
    const { stripe } = await setUp();
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });

    const tooSmall = await rejectionOf(stripe.paymentIntents.update(intent.id, { amount: 20 }));
    expect(tooSmall).toMatchObject({ statusCode: 400, code: 'amount_too_small', param: 'amount' });
    // 1000 is enough in usd, not in huf (minimum 17500).
    const otherCurrency = await rejectionOf(stripe.paymentIntents.update(intent.id, { currency: 'huf' }));
    expect(otherCurrency).toMatchObject({ code: 'amount_too_small' });
    const tooLarge = await rejectionOf(
      stripe.paymentIntents.update(intent.id, { amount: STRIPE_MAXIMUM_CHARGE + 1 }),
    );
    expect(tooLarge).toMatchObject({ code: 'amount_too_large' });
    expect(await stripe.paymentIntents.retrieve(intent.id)).toMatchObject({ amount: 1000, currency: 'usd' });

    const updated = await stripe.paymentIntents.update(intent.id, { amount: 17_500, currency: 'huf' });
    expect(updated).toMatchObject({ amount: 17_500, currency: 'huf' });
  });

  it('does not store a refused amount under the idempotency key', async () => {
    const { stripe } = await setUp();
    const refused = await rejectionOf(
      stripe.paymentIntents.create({ amount: 10, currency: 'usd' }, { idempotencyKey: 'k-min' }),
    );
    expect(refused).toMatchObject({ code: 'amount_too_small' });
    const intent = await stripe.paymentIntents.create(
      { amount: 60, currency: 'usd' },
      { idempotencyKey: 'k-min' },
    );
    expect(intent.amount).toBe(60);
  });
});

describe('listing PaymentIntents', () => {
  async function fiveIntents(stripe: Stripe): Promise<Stripe.PaymentIntent[]> {
    const intents: Stripe.PaymentIntent[] = [];
    for (let i = 0; i < 5; i++) {
      intents.push(await stripe.paymentIntents.create({ amount: 1000 + i, currency: 'usd' }));
    }
    return intents;
  }

  it("lists newest first in Stripe's list shape, paged by limit, starting_after and ending_before", async () => {
    const { stripe } = await setUp();
    const [a, b, c, d, e] = (await fiveIntents(stripe)).map((intent) => intent.id);

    const all = await stripe.paymentIntents.list();
    expect(all).toMatchObject({ object: 'list', has_more: false, url: '/v1/payment_intents' });
    expect(all.data.map((intent) => intent.id)).toEqual([e, d, c, b, a]);
    expect(all.data[0]).toEqual(await stripe.paymentIntents.retrieve(e!));

    const first = await stripe.paymentIntents.list({ limit: 2 });
    expect(first.data.map((intent) => intent.id)).toEqual([e, d]);
    expect(first.has_more).toBe(true);
    const next = await stripe.paymentIntents.list({ limit: 2, starting_after: d });
    expect(next.data.map((intent) => intent.id)).toEqual([c, b]);
    expect(next.has_more).toBe(true);
    const last = await stripe.paymentIntents.list({ limit: 2, starting_after: b });
    expect(last.data.map((intent) => intent.id)).toEqual([a]);
    expect(last.has_more).toBe(false);

    const newer = await stripe.paymentIntents.list({ limit: 2, ending_before: b });
    expect(newer.data.map((intent) => intent.id)).toEqual([d, c]);
    expect(newer.has_more).toBe(true);
    const newest = await stripe.paymentIntents.list({ limit: 2, ending_before: d });
    expect(newest.data.map((intent) => intent.id)).toEqual([e]);
    expect(newest.has_more).toBe(false);
  });

  it("lets the SDK's auto-pagination walk every intent, both ways", async () => {
    const { stripe } = await setUp();
    const ids = (await fiveIntents(stripe)).map((intent) => intent.id);

    const walked: string[] = [];
    for await (const intent of stripe.paymentIntents.list({ limit: 2 })) walked.push(intent.id);
    expect(walked).toEqual([...ids].reverse());

    const backwards = await stripe.paymentIntents
      .list({ limit: 2, ending_before: ids[0] })
      .autoPagingToArray({ limit: 100 });
    expect(backwards.map((intent) => intent.id)).toEqual(ids.slice(1));
  });

  it('answers an empty list when there are none', async () => {
    const { stripe } = await setUp();
    expect(await stripe.paymentIntents.list()).toMatchObject({ data: [], has_more: false });
  });

  it('refuses a bad limit, an unknown cursor, both cursors, and a publishable key', async () => {
    const { emulator, stripe } = await setUp();
    const [intent] = await fiveIntents(stripe);
    expect(await rejectionOf(stripe.paymentIntents.list({ limit: 0 }))).toMatchObject({
      statusCode: 400,
      param: 'limit',
    });
    expect(await rejectionOf(stripe.paymentIntents.list({ limit: 101 }))).toMatchObject({ param: 'limit' });
    expect(await rejectionOf(stripe.paymentIntents.list({ starting_after: 'pi_missing' }))).toMatchObject({
      statusCode: 400,
      code: 'resource_missing',
      param: 'starting_after',
    });
    expect(await rejectionOf(stripe.paymentIntents.list({ ending_before: 'pi_missing' }))).toMatchObject({
      code: 'resource_missing',
      param: 'ending_before',
    });
    expect(
      await rejectionOf(
        stripe.paymentIntents.list({ starting_after: intent!.id, ending_before: intent!.id }),
      ),
    ).toMatchObject({ statusCode: 400, param: 'ending_before' });
    const browser = clientFor(emulator, 'pk_test_shop');
    expect(await rejectionOf(browser.paymentIntents.list())).toMatchObject({ statusCode: 401 });
  });
});

describe('faults', () => {
  async function withFaults(
    spec: FaultSpec,
    options: {
      answer?: Parameters<typeof startReceiver>[0];
      filter?: (name: FaultName, context: FaultContext) => boolean;
    } = {},
  ) {
    const lines: string[] = [];
    const faults = faultInjector({
      spec,
      seed: 1,
      log: (line) => lines.push(line),
      ...(options.filter ? { filter: options.filter } : {}),
    });
    const harness = await setUp({ faults, ...(options.answer ? { answer: options.answer } : {}) });
    return { ...harness, faults, lines };
  }

  function expectInjected500(error: Stripe.errors.StripeError) {
    expect(error).toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect(error).toMatchObject({
      statusCode: 500,
      rawType: 'api_error',
      message: expect.stringMatching(/went wrong/),
    });
  }

  it('stripe.error answers 500 api_error and does nothing', async () => {
    const { emulator, receiver, stripe, faults, lines } = await withFaults({ 'stripe.error': 1 });

    const error = await rejectionOf(
      stripe.paymentIntents.create({
        amount: 1000,
        currency: 'usd',
        payment_method: 'pm_card_visa',
        confirm: true,
      }),
    );
    expectInjected500(error);
    expect(lines).toEqual(['fault stripe.error: POST /v1/payment_intents']);

    faults.set({});
    await emulator.idle();
    expect((await stripe.paymentIntents.list()).data).toEqual([]);
    expect(receiver.deliveries).toEqual([]);
    expect(faults.counts()['stripe.error']).toBe(1);
  });

  it('stripe.error stores its 500 under the idempotency key: the same key answers it again, whatever happens after', async () => {
    const { stripe, faults } = await withFaults({ 'stripe.error': 1 });
    const params = { amount: 1000, currency: 'usd' };
    expectInjected500(await rejectionOf(stripe.paymentIntents.create(params, { idempotencyKey: 'k-err' })));

    faults.set({});
    const replayed = await rejectionOf(stripe.paymentIntents.create(params, { idempotencyKey: 'k-err' }));
    expectInjected500(replayed);
    expect(replayed.headers).toMatchObject({ 'idempotent-replayed': 'true', 'stripe-should-retry': 'false' });
    expect((await stripe.paymentIntents.list()).data).toEqual([]);

    const created = await stripe.paymentIntents.create(params, { idempotencyKey: 'k-new' });
    expect(created.status).toBe('requires_payment_method');
  });

  it('stripe.lost-response does the work, answers 500, and replays the 500 under the key', async () => {
    const { emulator, receiver, stripe, faults, lines } = await withFaults({});
    const intent = await stripe.paymentIntents.create({
      amount: 2500,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      metadata: { orderId: 'ord-lost' },
    });

    faults.set({ 'stripe.lost-response': 1 });
    const lost = await rejectionOf(
      stripe.paymentIntents.confirm(intent.id, {}, { idempotencyKey: 'k-confirm' }),
    );
    expectInjected500(lost);
    expect(lines).toEqual([`fault stripe.lost-response: POST /v1/payment_intents/${intent.id}/confirm`]);

    faults.set({});
    // Stripe holds the truth: the payment went through and its webhook goes out.
    expect(await stripe.paymentIntents.retrieve(intent.id)).toMatchObject({
      status: 'succeeded',
      amount_received: 2500,
    });
    await emulator.idle();
    expect(typesFor(receiver, intent.id)).toEqual(['payment_intent.created', 'payment_intent.succeeded']);

    // Retrying the key never learns it: the stored 500 comes back, and nothing is charged twice.
    const again = await rejectionOf(
      stripe.paymentIntents.confirm(intent.id, {}, { idempotencyKey: 'k-confirm' }),
    );
    expectInjected500(again);
    expect(again.headers).toMatchObject({ 'idempotent-replayed': 'true' });
    const fresh = await rejectionOf(
      stripe.paymentIntents.confirm(intent.id, {}, { idempotencyKey: 'k-other' }),
    );
    expect(fresh).toMatchObject({ statusCode: 400, code: 'payment_intent_unexpected_state' });
    await emulator.idle();
    expect(typesFor(receiver, intent.id)).toEqual(['payment_intent.created', 'payment_intent.succeeded']);
  });

  it('hit GETs too, where nothing is stored', async () => {
    const { stripe, faults, lines } = await withFaults({});
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });

    faults.set({ 'stripe.error': 1 });
    expectInjected500(await rejectionOf(stripe.paymentIntents.retrieve(intent.id)));
    expect(lines).toEqual([`fault stripe.error: GET /v1/payment_intents/${intent.id}`]);
    faults.set({});
    expect((await stripe.paymentIntents.retrieve(intent.id)).id).toBe(intent.id);
  });

  it('spare publishable-key (browser) requests', async () => {
    const { emulator, stripe, faults, lines } = await withFaults({});
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });

    faults.set({ 'stripe.error': 1, 'stripe.lost-response': 1, 'stripe.slow': 5_000 });
    const browser = clientFor(emulator, 'pk_test_shop');
    const confirmed = await browser.paymentIntents.confirm(intent.id, {
      payment_method: 'pm_card_visa',
      client_secret: intent.client_secret!,
    } as Stripe.PaymentIntentConfirmParams);
    expect(confirmed.status).toBe('succeeded');
    expect(lines).toEqual([]);
  });

  it('follow the filter: only the confirm of one order fails', async () => {
    const { stripe } = await withFaults(
      { 'stripe.error': 1 },
      { filter: (_, context) => Boolean(context.request?.endsWith('/confirm')) },
    );
    const intent = await stripe.paymentIntents.create({
      amount: 1000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
    });
    expectInjected500(await rejectionOf(stripe.paymentIntents.confirm(intent.id)));
    expect((await stripe.paymentIntents.retrieve(intent.id)).status).toBe('requires_confirmation');
  });

  it('stripe.slow delays every secret-key answer by MS, after doing the work', async () => {
    const slowMs = 200;
    const { stripe, lines } = await withFaults({ 'stripe.slow': slowMs });

    const started = performance.now();
    const intent = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(slowMs - 5);
    expect(lines).toEqual([`fault stripe.slow: POST /v1/payment_intents (+${slowMs} ms)`]);

    const again = performance.now();
    await stripe.paymentIntents.retrieve(intent.id);
    expect(performance.now() - again).toBeGreaterThanOrEqual(slowMs - 5);
  });

  it('close() releases answers held by stripe.slow and leaves no timer behind', async () => {
    const slowMs = 60_000;
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const clearTimeoutSpy = vi.spyOn(globalThis, 'clearTimeout');
    onTestFinished(() => {
      setTimeoutSpy.mockRestore();
      clearTimeoutSpy.mockRestore();
    });
    const { emulator, stripe, lines } = await withFaults({ 'stripe.slow': slowMs });
    const pending = rejectionOf(stripe.paymentIntents.create({ amount: 1000, currency: 'usd' }));
    await waitFor(() => lines.length === 1, 'the answer to be held');
    const held = setTimeoutSpy.mock.results[setTimeoutSpy.mock.calls.findIndex((call) => call[1] === slowMs)];

    await emulator.close();
    expect(await pending).toBeInstanceOf(Stripe.errors.StripeConnectionError);
    expect(clearTimeoutSpy.mock.calls.map((call) => call[0])).toContain(held?.value);
  });

  it('webhook.delay starts every delivery SECONDS late, keeping the order per object', async () => {
    const delaySeconds = 0.3;
    const { emulator, receiver, stripe, lines } = await withFaults({ 'webhook.delay': delaySeconds });

    const sent = performance.now();
    const intent = await stripe.paymentIntents.create({
      amount: 1000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
      metadata: { orderId: 'ord-late' },
    });
    await emulator.idle();

    expect(typesFor(receiver, intent.id)).toEqual(['payment_intent.created', 'payment_intent.succeeded']);
    for (const delivery of receiver.deliveries) {
      expect(delivery.at - sent).toBeGreaterThanOrEqual(delaySeconds * 1000 - 5);
    }
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(
      /^fault webhook\.delay: payment_intent\.succeeded evt_\w+ \(order ord-late\) \(\+300 ms\)$/,
    );
  });

  it('webhook.drop never delivers the event, decided once per event, while Stripe keeps the truth', async () => {
    const rolled: FaultContext[] = [];
    const { emulator, receiver, stripe, faults, lines } = await withFaults(
      { 'webhook.drop': 1 },
      {
        // The first attempts fail, so kept events are retried: a retry must not be dropped.
        answer: (_delivery, n) => (n < 2 ? 500 : 200),
        filter: (name, context) => {
          if (name === 'webhook.drop') rolled.push(context);
          return context.eventType === 'payment_intent.succeeded';
        },
      },
    );
    const intent = await stripe.paymentIntents.create({
      amount: 1000,
      currency: 'usd',
      payment_method: 'pm_card_visa',
      confirm: true,
      metadata: { orderId: 'ord-dropped' },
    });
    await emulator.idle();

    expect(typesFor(receiver, intent.id)).toEqual([
      'payment_intent.created',
      'payment_intent.created',
      'payment_intent.created',
    ]);
    expect(rolled.map((context) => context.eventType)).toEqual([
      'payment_intent.created',
      'payment_intent.succeeded',
    ]);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^fault webhook\.drop: payment_intent\.succeeded evt_\w+ \(order ord-dropped\)$/,
    );
    expect(faults.counts()['webhook.drop']).toBe(1);
    expect((await stripe.paymentIntents.retrieve(intent.id)).status).toBe('succeeded');
  });
});
