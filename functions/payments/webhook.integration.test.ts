import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import fc from 'fast-check';
import Stripe from 'stripe';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { parseEvent } from '../../events/envelope.ts';
import { SagaOutcome } from '../../shared/saga.ts';
import { startStripeEmulator, type StripeEmulator } from '../../infra/local/stripe-emulator/index.ts';
import { createTables, tableName, templateTables } from '../../infra/local/tables.ts';
import { synthesizeTemplate } from '../../infra/local/template.ts';
import type { HttpHandler } from '../../shared/http.ts';
import { pollUntil } from '../../tests/support/poll.ts';
import type { Payment } from './payment.ts';
import { dynamoPaymentRepository, type PaymentRepository } from './payment-repository.ts';
import {
  cancelPayment,
  checkoutFor,
  createPayment,
  requestPayment,
  resolvePayment,
  type PaymentDeps,
} from './payments.ts';
import type { SagaNotifier } from './saga-notifier.ts';
import { stripeGateway } from './stripe-gateway.ts';
import { stripeWebhookHandler } from './webhook-route.ts';

/*
 * The webhook against the real engines: the payments table as the stack defines it, in DynamoDB
 * Local; the real `stripe` SDK against the local Stripe emulator (PaymentIntents are created,
 * confirmed, canceled and refunded there); events signed with the SDK's own
 * `generateTestHeaderString`, so that duplicates, reordering and stale timestamps can be staged.
 * Only Step Functions is stood in for, by a recording notifier that behaves like task tokens do:
 * a token accepts one outcome, and answers `closed` (TaskTimedOut/InvalidToken) afterwards or once
 * its step timed out.
 */

const SECRET = 'whsec_integration_current';
const OLD_SECRET = 'whsec_integration_previous';
const API_KEY = 'sk_test_integration';

type SagaCall = { token: string; kind: 'succeed' | 'fail'; error?: string; answer: 'sent' | 'closed' };

class TaskTokens implements SagaNotifier {
  readonly calls: SagaCall[] = [];
  readonly #closed = new Set<string>();

  /** The step behind this token timed out: later outcomes are refused. */
  timeOut(token: string) {
    this.#closed.add(token);
  }

  #answer(token: string, kind: 'succeed' | 'fail', error?: string): Promise<'sent' | 'closed'> {
    const answer = this.#closed.has(token) ? 'closed' : 'sent';
    this.#closed.add(token);
    this.calls.push({ token, kind, answer, ...(error ? { error } : {}) });
    return Promise.resolve(answer);
  }

  succeed(token: string) {
    return this.#answer(token, 'succeed');
  }

  fail(token: string, error: string) {
    return this.#answer(token, 'fail', error);
  }

  /** The outcomes the saga actually received for a token. */
  heard(token: string) {
    return this.calls
      .filter((call) => call.token === token && call.answer === 'sent')
      .map((call) => call.error ?? call.kind);
  }
}

let raw: DynamoDBClient;
let client: DynamoDBDocumentClient;
let table: string;
let payments: PaymentRepository;
let emulator: StripeEmulator;
let stripe: Stripe;
let saga: TaskTokens;
let deps: PaymentDeps;
let webhook: HttpHandler;

beforeAll(async () => {
  raw = new DynamoDBClient({
    endpoint: inject('dynamodbEndpoint'),
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  client = DynamoDBDocumentClient.from(raw);
  const prefix = `it-pay-${randomUUID().slice(0, 6)}-`;
  const paymentTables = templateTables(await synthesizeTemplate({})).filter((t) =>
    t.logicalId.startsWith('Payments'),
  );
  expect(paymentTables).toHaveLength(1);
  await createTables(raw, paymentTables, prefix);
  table = tableName(paymentTables[0]!.logicalId, prefix);
  payments = dynamoPaymentRepository(client, table);
  // No webhook URL: the emulator's own deliveries stay queued; these tests deliver events themselves.
  emulator = await startStripeEmulator({ webhookSecret: SECRET });
  stripe = new Stripe(API_KEY, {
    host: emulator.host,
    port: emulator.port,
    protocol: 'http',
    maxNetworkRetries: 0,
  });
});

afterAll(async () => {
  await emulator?.close();
  raw?.destroy();
});

function depsWith(webhookSecrets: readonly string[], stripeApi: StripeEmulator = emulator): PaymentDeps {
  return {
    payments,
    gateway: stripeGateway({ apiKey: API_KEY, webhookSecrets, apiUrl: stripeApi.url }),
    saga,
    now: () => new Date(),
  };
}

beforeEach(() => {
  saga = new TaskTokens();
  deps = depsWith([SECRET]);
  webhook = stripeWebhookHandler(deps);
});

// --- helpers ---------------------------------------------------------------------------------------

interface Answer {
  status: number;
  body: { received?: boolean; error?: { code: string; message: string } };
}

async function deliver(
  body: string,
  signature: string | undefined,
  options: { base64?: boolean; handler?: HttpHandler } = {},
): Promise<Answer> {
  const event = {
    version: '2.0',
    routeKey: 'POST /payments/webhook',
    rawPath: '/payments/webhook',
    rawQueryString: '',
    headers: {
      'content-type': 'application/json; charset=utf-8',
      ...(signature === undefined ? {} : { 'stripe-signature': signature }),
    },
    body: options.base64 ? Buffer.from(body, 'utf8').toString('base64') : body,
    isBase64Encoded: options.base64 ?? false,
  } as unknown as APIGatewayProxyEventV2;
  const response = await (options.handler ?? webhook)(event, {} as Context);
  return { status: response.statusCode ?? 0, body: JSON.parse(String(response.body)) as Answer['body'] };
}

const sign = (payload: string, secret = SECRET, timestamp?: number) =>
  stripe.webhooks.generateTestHeaderString({ payload, secret, ...(timestamp ? { timestamp } : {}) });

/** A Stripe event as Stripe sends it: its data.object is the PaymentIntent at that moment. */
function stripeEvent(type: string, object: unknown, id = `evt_${randomUUID().replaceAll('-', '')}`) {
  return JSON.stringify(
    {
      id,
      object: 'event',
      api_version: '2026-10-28.endive',
      created: Math.floor(Date.now() / 1000),
      data: { object },
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
      type,
    },
    null,
    2,
  );
}

async function signedDelivery(type: string, object: unknown, id?: string) {
  const body = stripeEvent(type, object, id);
  return deliver(body, sign(body));
}

const ok = { status: 200, body: { received: true } };

/**
 * Starts an order's payment whose outcome only the webhook reports: the payment step creates and
 * records the intent and stores its token, then the intent is confirmed at Stripe behind the step's
 * back (as a customer does with the client secret). A confirm by the step itself would report
 * Stripe's answer at once, which tests/e2e and payments.test.ts cover. `orderMethod` is the order's
 * own payment method: none by default (the customer confirms in the browser, so a decline may be
 * retried); `pm_card_authenticationRequired` makes the step confirm first and Stripe ask for
 * 3-D Secure, so that a decline after it is final.
 */
async function startPayment(
  paymentMethodId: string | null,
  amount = 2500,
  orderMethod: string | null = null,
) {
  const orderId = `order-${randomUUID()}`;
  const taskToken = `token-${randomUUID()}`;
  const started = await requestPayment(deps)({
    orderId,
    customerId: 'customer-1',
    amount,
    currency: 'usd',
    paymentMethodId: orderMethod,
    taskToken,
  });
  if (paymentMethodId) {
    await stripe.paymentIntents
      .confirm(started.paymentIntentId!, { payment_method: paymentMethodId })
      .catch((error: unknown) => {
        if (!(error instanceof Stripe.errors.StripeCardError)) throw error;
      });
  }
  const intent = await stripe.paymentIntents.retrieve(started.paymentIntentId!);
  return { orderId, taskToken, intent };
}

async function paymentOf(orderId: string): Promise<Payment> {
  const payment = await payments.get(orderId);
  if (!payment) throw new Error(`no payment for ${orderId}`);
  return payment;
}

/** The payment's outbox, decoded with the event contracts, in commit order. */
async function outboxOf(orderId: string) {
  const { Items } = await client.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :events)',
      ExpressionAttributeValues: { ':pk': `PAYMENT#${orderId}`, ':events': 'EVENT#' },
      ConsistentRead: true,
    }),
  );
  return (Items ?? [])
    .map((item) => parseEvent(JSON.parse(String(item.event))))
    .sort((a, b) => a.time.localeCompare(b.time));
}

const typesOf = async (orderId: string) => (await outboxOf(orderId)).map((event) => event.type);

/** Every item of the table, in key order: what "no state change" is checked against. */
async function tableSnapshot(): Promise<string> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await client.send(
      new ScanCommand({ TableName: table, ConsistentRead: true, ExclusiveStartKey: start }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  const key = (item: Record<string, unknown>) => `${String(item.pk)}\u0000${String(item.sk)}`;
  return JSON.stringify(items.sort((a, b) => key(a).localeCompare(key(b))));
}

/** The partition keys of items in `after` that `before` did not have. */
function newKeys(before: string, after: string): string[] {
  const keys = (snapshot: string) =>
    (JSON.parse(snapshot) as Array<{ pk: string; sk: string }>).map((item) => `${item.pk}|${item.sk}`);
  const known = new Set(keys(before));
  return keys(after)
    .filter((key) => !known.has(key))
    .map((key) => key.split('|')[0]!);
}

/** The refund Stripe holds for the payment's PaymentIntent, and whether anything is left to refund. */
async function refundAtStripe(payment: Payment) {
  const refund = await stripe.refunds.retrieve(payment.refundId!);
  const again = await stripe.refunds.create({ payment_intent: payment.paymentIntentId! }).then(
    () => 'refunded again',
    (error: Stripe.errors.StripeError) => error.code,
  );
  return { refund, again };
}

/** The customer's browser: Stripe.js with the shop's publishable key (it needs the client secret). */
const browserStripe = () =>
  new Stripe('pk_test_integration', {
    host: emulator.host,
    port: emulator.port,
    protocol: 'http',
    maxNetworkRetries: 0,
  });

/** A customer paying the waiting PaymentIntent themselves (what a client does with its client secret). */
const customerPays = (intentId: string) =>
  stripe.paymentIntents.confirm(intentId, { payment_method: 'pm_card_visa' });

// --- signatures ------------------------------------------------------------------------------------

describe('signatures', () => {
  it('accepts an event signed with the endpoint secret and applies it', async () => {
    const { orderId, taskToken, intent } = await startPayment('pm_card_visa');

    expect(await signedDelivery('payment_intent.succeeded', intent)).toEqual(ok);

    expect(await paymentOf(orderId)).toMatchObject({ status: 'SUCCEEDED', stripeStatus: 'succeeded' });
    expect(saga.heard(taskToken)).toEqual(['succeed']);
  });

  it.each([
    ['signed with another secret', (body: string) => sign(body, 'whsec_someone_else'), 'INVALID_SIGNATURE'],
    ['without a Stripe-Signature header', () => undefined, 'MISSING_SIGNATURE'],
    ['with an empty Stripe-Signature header', () => '', 'MISSING_SIGNATURE'],
    [
      'signed 301 s ago',
      (body: string) => sign(body, SECRET, Math.floor(Date.now() / 1000) - 301),
      'INVALID_SIGNATURE',
    ],
    [
      'dated 301 s in the future',
      (body: string) => sign(body, SECRET, Math.floor(Date.now() / 1000) + 301),
      'INVALID_SIGNATURE',
    ],
    [
      'with a signature of another scheme only',
      (body: string) => sign(body).replace('v1=', 'v0='),
      'INVALID_SIGNATURE',
    ],
  ])('refuses an event %s with 400 %s and changes nothing', async (_, signature, code) => {
    const { intent } = await startPayment('pm_card_visa');
    const body = stripeEvent('payment_intent.succeeded', intent);
    const before = await tableSnapshot();

    const answer = await deliver(body, signature(body));

    expect(answer.status).toBe(400);
    expect(answer.body.error?.code).toBe(code);
    expect(await tableSnapshot()).toBe(before);
    expect(saga.calls).toEqual([]);
  });

  it('names a stale timestamp as such', async () => {
    const body = stripeEvent('payment_intent.succeeded', { id: 'pi_x', object: 'payment_intent' });
    const answer = await deliver(body, sign(body, SECRET, Math.floor(Date.now() / 1000) - 3600));
    expect(answer.body.error?.message).toBe('The Stripe-Signature timestamp is more than 300 s old.');
  });

  it('refuses a tampered body: the signature of the original does not cover it', async () => {
    const { orderId, intent } = await startPayment('pm_card_visa');
    const original = stripeEvent('payment_intent.payment_failed', intent);
    const tampered = original.replace('payment_intent.payment_failed', 'payment_intent.succeeded');
    const before = await tableSnapshot();

    const answer = await deliver(tampered, sign(original));

    expect(answer).toMatchObject({ status: 400, body: { error: { code: 'INVALID_SIGNATURE' } } });
    expect(await tableSnapshot()).toBe(before);
    expect((await paymentOf(orderId)).status).toBe('INITIATED');
  });

  it('verifies the raw body of a base64-encoded delivery (isBase64Encoded)', async () => {
    const { orderId, intent } = await startPayment('pm_card_visa');
    const body = stripeEvent('payment_intent.succeeded', intent);

    expect(await deliver(body, sign(body), { base64: true })).toEqual(ok);
    expect((await paymentOf(orderId)).status).toBe('SUCCEEDED');
  });

  it('accepts a header carrying several v1 signatures of which one matches (a secret being rolled at Stripe)', async () => {
    const t = Math.floor(Date.now() / 1000);
    const v1 = (body: string, secret: string) => sign(body, secret, t).split(',')[1]!;
    const ourFirst = await startPayment('pm_card_visa');
    const ourSecond = await startPayment('pm_card_visa');
    const first = stripeEvent('payment_intent.succeeded', ourFirst.intent);
    const second = stripeEvent('payment_intent.succeeded', ourSecond.intent);

    // The order of the signatures does not matter; one that matches is enough.
    expect(await deliver(first, `t=${t},${v1(first, SECRET)},${v1(first, 'whsec_rolled')}`)).toEqual(ok);
    expect(await deliver(second, `t=${t},${v1(second, 'whsec_rolled')},${v1(second, SECRET)}`)).toEqual(ok);
    // None that matches: refused.
    const third = await startPayment('pm_card_visa');
    const body = stripeEvent('payment_intent.succeeded', third.intent);
    expect(
      await deliver(body, `t=${t},${v1(body, 'whsec_rolled')},${v1(body, 'whsec_older')}`),
    ).toMatchObject({ status: 400, body: { error: { code: 'INVALID_SIGNATURE' } } });

    expect((await paymentOf(ourFirst.orderId)).status).toBe('SUCCEEDED');
    expect((await paymentOf(ourSecond.orderId)).status).toBe('SUCCEEDED');
    expect((await paymentOf(third.orderId)).status).toBe('INITIATED');
  });

  it('during our own rotation accepts events signed with either configured secret, and no other', async () => {
    const rotating = stripeWebhookHandler(depsWith([SECRET, OLD_SECRET]));
    const first = await startPayment('pm_card_visa');
    const second = await startPayment('pm_card_visa');
    const withOld = stripeEvent('payment_intent.succeeded', first.intent);
    const withNew = stripeEvent('payment_intent.succeeded', second.intent);
    const withOther = stripeEvent('payment_intent.succeeded', second.intent);

    expect(await deliver(withOld, sign(withOld, OLD_SECRET), { handler: rotating })).toEqual(ok);
    expect(await deliver(withNew, sign(withNew, SECRET), { handler: rotating })).toEqual(ok);
    expect(await deliver(withOther, sign(withOther, 'whsec_other'), { handler: rotating })).toMatchObject({
      status: 400,
      body: { error: { code: 'INVALID_SIGNATURE' } },
    });
    // The handler configured with the new secret alone no longer takes the old one.
    const third = await startPayment('pm_card_visa');
    const lateOld = stripeEvent('payment_intent.succeeded', third.intent);
    expect((await deliver(lateOld, sign(lateOld, OLD_SECRET))).status).toBe(400);

    expect((await paymentOf(first.orderId)).status).toBe('SUCCEEDED');
    expect((await paymentOf(second.orderId)).status).toBe('SUCCEEDED');
    expect((await paymentOf(third.orderId)).status).toBe('INITIATED');
  });

  it('refuses a verified body that is not JSON (INVALID_JSON) or not a Stripe event (VALIDATION_FAILED)', async () => {
    const before = await tableSnapshot();
    const notJson = 'not json';
    const notAnEvent = JSON.stringify({ id: 'evt_1', type: 'payment_intent.succeeded', data: { object: 7 } });

    expect(await deliver(notJson, sign(notJson))).toMatchObject({
      status: 400,
      body: { error: { code: 'INVALID_JSON' } },
    });
    expect(await deliver(notAnEvent, sign(notAnEvent))).toMatchObject({
      status: 400,
      body: { error: { code: 'VALIDATION_FAILED' } },
    });
    expect(await tableSnapshot()).toBe(before);
  });
});

// --- deliveries ------------------------------------------------------------------------------------

describe('deliveries', () => {
  it('payment_failed settles the payment FAILED with the decline code and fails the step with PAYMENT_FAILED', async () => {
    const { orderId, taskToken, intent } = await startPayment(
      'pm_card_chargeDeclinedInsufficientFunds',
      2500,
      'pm_card_authenticationRequired',
    );
    expect(intent.status).toBe('requires_payment_method');

    expect(await signedDelivery('payment_intent.payment_failed', intent)).toEqual(ok);

    expect(await paymentOf(orderId)).toMatchObject({ status: 'FAILED', failureCode: 'insufficient_funds' });
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.failed']);
    expect((await outboxOf(orderId))[1]?.data).toMatchObject({
      reason: 'DECLINED',
      failureCode: 'insufficient_funds',
      amount: 2500,
      currency: 'usd',
    });
    expect(saga.heard(taskToken)).toEqual([SagaOutcome.PaymentDeclined]);
  });

  it('canceled settles the payment CANCELLED and fails the step with PAYMENT_CANCELED', async () => {
    const { orderId, taskToken, intent } = await startPayment(null);
    const canceled = await stripe.paymentIntents.cancel(intent.id, { cancellation_reason: 'abandoned' });

    expect(await signedDelivery('payment_intent.canceled', canceled)).toEqual(ok);

    expect(await paymentOf(orderId)).toMatchObject({ status: 'CANCELLED', stripeStatus: 'canceled' });
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.cancelled']);
    expect(saga.heard(taskToken)).toEqual([SagaOutcome.PaymentCanceled]);
  });

  it('applies concurrent duplicates of one event once: one payment.succeeded, one outcome for the saga', async () => {
    const { orderId, taskToken, intent } = await startPayment('pm_card_visa');
    const body = stripeEvent('payment_intent.succeeded', intent);

    const answers = await Promise.all(Array.from({ length: 6 }, () => deliver(body, sign(body))));

    expect(answers).toEqual(Array.from({ length: 6 }, () => ok));
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.succeeded']);
    expect(saga.heard(taskToken)).toEqual(['succeed']);
    expect(saga.calls.every((call) => call.kind === 'succeed')).toBe(true);
    const after = await tableSnapshot();
    expect(await deliver(body, sign(body))).toEqual(ok);
    expect(await tableSnapshot()).toBe(after);
  });

  it('failed then succeeded (a final decline, then the customer paid with another card): the success is refunded once', async () => {
    const {
      orderId,
      taskToken,
      intent: declined,
    } = await startPayment('pm_card_chargeDeclined', 2500, 'pm_card_authenticationRequired');
    const paid = await customerPays(declined.id);
    expect(paid.status).toBe('succeeded');

    expect(await signedDelivery('payment_intent.payment_failed', declined)).toEqual(ok);
    const success = stripeEvent('payment_intent.succeeded', paid);
    // Concurrent duplicates of the late success: one refund, one payment.refunded.
    expect(await Promise.all([deliver(success, sign(success)), deliver(success, sign(success))])).toEqual([
      ok,
      ok,
    ]);

    const payment = await paymentOf(orderId);
    expect(payment).toMatchObject({ status: 'REFUNDED', failureCode: 'generic_decline' });
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.failed', 'payment.refunded']);
    expect((await outboxOf(orderId))[2]?.data).toMatchObject({
      paymentIntentId: paid.id,
      refundId: payment.refundId,
      reason: 'PAYMENT_FAILED',
      amount: 2500,
    });
    const { refund, again } = await refundAtStripe(payment);
    expect(refund).toMatchObject({ payment_intent: paid.id, amount: 2500, status: 'succeeded' });
    expect(again).toBe('charge_already_refunded');
    // The saga heard the failure only, and its compensation then changes nothing more.
    expect(saga.heard(taskToken)).toEqual([SagaOutcome.PaymentDeclined]);
    const before = await tableSnapshot();
    expect(await cancelPayment(deps)({ orderId, failure: { Error: 'PAYMENT_FAILED' } })).toEqual({
      status: 'REFUNDED',
    });
    expect(await tableSnapshot()).toBe(before);
  });

  it('succeeded then failed (delivered out of order): the success stands and the late failure changes nothing', async () => {
    const { orderId, taskToken, intent: declined } = await startPayment('pm_card_chargeDeclined');
    const paid = await customerPays(declined.id);

    expect(await signedDelivery('payment_intent.succeeded', paid)).toEqual(ok);
    const before = await tableSnapshot();
    const payment = await paymentOf(orderId);

    expect(await signedDelivery('payment_intent.payment_failed', declined)).toEqual(ok);

    expect(await paymentOf(orderId)).toEqual(payment);
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.succeeded']);
    // Only the event's own record is new.
    expect(newKeys(before, await tableSnapshot())).toEqual([expect.stringMatching(/^STRIPE_EVENT#evt_/)]);
    expect(saga.heard(taskToken)).toEqual(['succeed']);
  });

  it('a success after the payment step timed out: compensation finds the intent paid and refunds it; the late webhook changes nothing', async () => {
    const { orderId, taskToken, intent } = await startPayment('pm_card_visa');
    expect(intent.status).toBe('succeeded'); // paid at Stripe; its webhook is late
    saga.timeOut(taskToken);

    expect(await cancelPayment(deps)({ orderId, failure: { Error: 'PAYMENT_TIMEOUT' } })).toEqual({
      status: 'REFUNDED',
    });
    const before = await tableSnapshot();
    expect(await signedDelivery('payment_intent.succeeded', intent)).toEqual(ok);

    const payment = await paymentOf(orderId);
    expect(payment.status).toBe('REFUNDED');
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.succeeded', 'payment.refunded']);
    expect((await refundAtStripe(payment)).again).toBe('charge_already_refunded');
    expect(newKeys(before, await tableSnapshot())).toEqual([expect.stringMatching(/^STRIPE_EVENT#evt_/)]);
    expect(saga.heard(taskToken)).toEqual([]);
  });

  it('a success after compensation cancelled the payment is refunded: REFUNDED, payment.refunded, the order stays cancelled', async () => {
    // The saga timed out before the payment step recorded an intent: compensation closed the
    // payment without Stripe. An intent for the order was created and paid all the same.
    const orderId = `order-${randomUUID()}`;
    const taskToken = `token-${randomUUID()}`;
    await payments.begin({ orderId, amount: 1800, currency: 'usd', taskToken }, new Date());
    saga.timeOut(taskToken);
    expect(
      await cancelPayment(deps)({
        orderId,
        failure: { Error: 'PAYMENT_TIMEOUT' },
        cancellationReason: 'PAYMENT_TIMEOUT',
      }),
    ).toEqual({ status: 'CANCELLED' });
    const { id } = await deps.gateway.createIntent({ orderId, amount: 1800, currency: 'usd' });
    const paid = await customerPays(id);

    const success = stripeEvent('payment_intent.succeeded', paid);
    expect(await deliver(success, sign(success))).toEqual(ok);

    const payment = await paymentOf(orderId);
    expect(payment).toMatchObject({ status: 'REFUNDED', paymentIntentId: paid.id });
    expect(await typesOf(orderId)).toEqual(['payment.refunded']);
    expect((await outboxOf(orderId))[0]?.data).toEqual({
      orderId,
      paymentIntentId: paid.id,
      amount: 1800,
      currency: 'usd',
      reason: 'PAYMENT_TIMEOUT',
      refundId: payment.refundId,
    });
    const { refund, again } = await refundAtStripe(payment);
    expect(refund).toMatchObject({ amount: 1800, payment_intent: paid.id });
    expect(again).toBe('charge_already_refunded');
    expect(saga.heard(taskToken)).toEqual([]);

    // Stripe retries the same event days later: nothing more.
    const before = await tableSnapshot();
    expect(await deliver(success, sign(success))).toEqual(ok);
    expect(await tableSnapshot()).toBe(before);
  });

  it('acknowledges events for unknown PaymentIntents and unhandled types with 200, changing nothing', async () => {
    const { intent } = await startPayment('pm_card_visa');
    const stranger = await stripe.paymentIntents.create({
      amount: 700,
      currency: 'usd',
      metadata: { orderId: 'order-not-ours' },
      payment_method: 'pm_card_visa',
      confirm: true,
    });
    const noMetadata = await stripe.paymentIntents.create({ amount: 700, currency: 'usd' });
    const before = await tableSnapshot();

    expect(await signedDelivery('payment_intent.succeeded', stranger)).toEqual(ok);
    expect(await signedDelivery('payment_intent.canceled', noMetadata)).toEqual(ok);
    expect(await signedDelivery('payment_intent.created', intent)).toEqual(ok);
    expect(await signedDelivery('charge.refunded', { id: 'ch_1', object: 'charge' })).toEqual(ok);
    expect(await signedDelivery('customer.created', { id: 'cus_1', object: 'customer' })).toEqual(ok);

    expect(await tableSnapshot()).toBe(before);
    expect(saga.calls).toEqual([]);
  });

  it("settles through the emulator's own signed deliveries, retried after our endpoint answered 500", async () => {
    let attempts = 0;
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const down =
          (JSON.parse(body) as Stripe.Event).type === 'payment_intent.succeeded' && attempts++ === 0;
        const answer = down
          ? Promise.resolve({ status: 500 })
          : deliver(body, String(req.headers['stripe-signature']), { handler: emittingWebhook });
        void answer.then(({ status }) => {
          res.statusCode = status;
          res.end();
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const delivering = await startStripeEmulator({
      webhookSecret: `${SECRET},${OLD_SECRET}`, // rolled at "Stripe": two v1 signatures per event
      webhookUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/payments/webhook`,
      webhookRetry: { maxAttempts: 4, baseDelayMs: 50 },
    });
    const emittingDeps = depsWith([SECRET], delivering);
    const emittingWebhook = stripeWebhookHandler(emittingDeps);
    try {
      const orderId = `order-${randomUUID()}`;
      const taskToken = `token-${randomUUID()}`;
      await requestPayment(emittingDeps)({
        orderId,
        amount: 990,
        currency: 'usd',
        paymentMethodId: 'pm_card_visa',
        taskToken,
      });

      await pollUntil(
        'the payment to succeed',
        () => paymentOf(orderId),
        (p) => p.status === 'SUCCEEDED',
      );
      await delivering.idle();
      expect(attempts).toBe(2);
      expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.succeeded']);
      expect(saga.heard(taskToken)).toEqual(['succeed']);
    } finally {
      await delivering.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

// --- refunds and second intents -------------------------------------------------------------------

/** Another PaymentIntent for the order, paid: one made in the Dashboard, or by another environment. */
const secondIntent = (orderId: string, amount = 2500, currency = 'usd') =>
  stripe.paymentIntents.create({
    amount,
    currency,
    metadata: { orderId },
    payment_method: 'pm_card_visa',
    confirm: true,
  });

const refundsAtStripe = async (paymentIntentId: string) =>
  (await stripe.refunds.list({ payment_intent: paymentIntentId })).data;

describe('the customer confirming with the client secret', () => {
  /** The saga's two payment steps around MarkPaymentPending: CreatePayment, then the waiting step. */
  async function created() {
    const orderId = `order-${randomUUID()}`;
    const view = await createPayment(deps)({
      orderId,
      customerId: 'customer-1',
      amount: 2500,
      currency: 'usd',
    });
    const waitFor = (paymentMethodId: string | null, taskToken = `token-${randomUUID()}`) =>
      requestPayment(deps)({
        orderId,
        customerId: 'customer-1',
        amount: 2500,
        currency: 'usd',
        paymentMethodId,
        taskToken,
      }).then((answer) => ({ answer, taskToken }));
    return { orderId, view, waitFor };
  }

  it('a success that comes before the payment step stored its token is reported as soon as it does', async () => {
    const { orderId, view, waitFor } = await created();
    expect(view).toEqual({
      paymentIntentId: expect.stringMatching(/^pi_/),
      status: 'requires_payment_method',
    });
    const { clientSecret: secret, lastError } = await checkoutFor(deps)(orderId);
    expect(secret).toMatch(/_secret_/);
    expect(lastError).toBeNull();
    const paid = await browserStripe().paymentIntents.confirm(view.paymentIntentId!, {
      payment_method: 'pm_card_visa',
      client_secret: secret!,
    } as Stripe.PaymentIntentConfirmParams);
    expect(await signedDelivery('payment_intent.succeeded', paid)).toEqual(ok);
    expect(await paymentOf(orderId)).toMatchObject({ status: 'SUCCEEDED' });
    expect(saga.calls).toEqual([]);

    const { taskToken } = await waitFor(null);

    expect(saga.heard(taskToken)).toEqual(['succeed']);
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.succeeded']);
  });

  it('a customer who confirms before the payment step does (the order has a payment method too) does not fail it', async () => {
    const { orderId, view, waitFor } = await created();
    const paid = await browserStripe().paymentIntents.confirm(view.paymentIntentId!, {
      payment_method: 'pm_card_visa',
      client_secret: (await checkoutFor(deps)(orderId)).clientSecret!,
    } as Stripe.PaymentIntentConfirmParams);

    // Stripe refuses the step's own confirm (payment_intent_unexpected_state): not a failure of the step.
    const { answer, taskToken } = await waitFor('pm_card_visa');
    expect(answer).toEqual({ paymentIntentId: view.paymentIntentId, status: 'succeeded' });
    expect(await signedDelivery('payment_intent.succeeded', paid)).toEqual(ok);

    expect(saga.heard(taskToken)).toEqual(['succeed']);
    expect(await paymentOf(orderId)).toMatchObject({
      status: 'SUCCEEDED',
      paymentIntentId: view.paymentIntentId,
    });
    expect((await stripe.paymentIntents.retrieve(view.paymentIntentId!)).amount_received).toBe(2500);
  });
});

describe('a browser checkout that tries another card', () => {
  const browserConfirm = (intentId: string, clientSecret: string, paymentMethod: string) =>
    browserStripe()
      .paymentIntents.confirm(intentId, {
        payment_method: paymentMethod,
        client_secret: clientSecret,
      } as Stripe.PaymentIntentConfirmParams)
      .catch((error: unknown) => {
        if (error instanceof Stripe.errors.StripeCardError) return undefined;
        throw error;
      });

  /** An order without a payment method whose step waits, its client secret as the order shows it. */
  async function waitingForBrowser() {
    const orderId = `order-${randomUUID()}`;
    const taskToken = `token-${randomUUID()}`;
    const { paymentIntentId } = await requestPayment(deps)({
      orderId,
      customerId: 'customer-1',
      amount: 2500,
      currency: 'usd',
      paymentMethodId: null,
      taskToken,
    });
    const { clientSecret } = await checkoutFor(deps)(orderId);
    return { orderId, taskToken, intentId: paymentIntentId!, clientSecret: clientSecret! };
  }

  it('a decline keeps the payment waiting with its lastError, once; another card then completes it', async () => {
    const { orderId, taskToken, intentId, clientSecret } = await waitingForBrowser();
    await browserConfirm(intentId, clientSecret, 'pm_card_chargeDeclined');
    const declined = await stripe.paymentIntents.retrieve(intentId);
    expect(declined).toMatchObject({
      status: 'requires_payment_method',
      last_payment_error: { code: 'card_declined', decline_code: 'generic_decline' },
    });

    const decline = stripeEvent('payment_intent.payment_failed', declined);
    expect(await deliver(decline, sign(decline))).toEqual(ok);

    expect(await paymentOf(orderId)).toMatchObject({
      status: 'INITIATED',
      confirmedBy: 'browser',
      stripeStatus: 'requires_payment_method',
      lastError: {
        code: 'card_declined',
        declineCode: 'generic_decline',
        message: 'Your card was declined.',
      },
    });
    expect(await typesOf(orderId)).toEqual(['payment.initiated']);
    expect(saga.calls).toEqual([]);
    expect(await checkoutFor(deps)(orderId)).toEqual({
      clientSecret,
      lastError: {
        code: 'card_declined',
        declineCode: 'generic_decline',
        message: 'Your card was declined.',
      },
    });
    // Stripe delivers it again: nothing changes.
    const before = await tableSnapshot();
    expect(await deliver(decline, sign(decline))).toEqual(ok);
    expect(await tableSnapshot()).toBe(before);

    const paid = await browserConfirm(intentId, clientSecret, 'pm_card_visa');
    expect(paid).toMatchObject({ status: 'succeeded', last_payment_error: null });
    expect(await signedDelivery('payment_intent.succeeded', paid)).toEqual(ok);

    expect(await paymentOf(orderId)).toMatchObject({ status: 'SUCCEEDED', notifiedToken: taskToken });
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.succeeded']);
    expect(saga.heard(taskToken)).toEqual(['succeed']);
    expect(await checkoutFor(deps)(orderId)).toEqual({ clientSecret: null, lastError: null });
    expect(await refundsAtStripe(intentId)).toEqual([]);

    // The first attempt's decline, delivered once more after the success (as a new event): nothing changes.
    const after = await tableSnapshot();
    expect(await signedDelivery('payment_intent.payment_failed', declined)).toEqual(ok);
    expect(newKeys(after, await tableSnapshot())).toEqual([expect.stringMatching(/^STRIPE_EVENT#evt_/)]);
    expect(await paymentOf(orderId)).toMatchObject({ status: 'SUCCEEDED' });
    expect(saga.heard(taskToken)).toEqual(['succeed']);
  });

  it('the payment timeout while the intent waits for another card cancels it: PAYMENT_TIMEOUT', async () => {
    const { orderId, taskToken, intentId, clientSecret } = await waitingForBrowser();
    await browserConfirm(intentId, clientSecret, 'pm_card_chargeDeclinedInsufficientFunds');
    expect(
      await signedDelivery('payment_intent.payment_failed', await stripe.paymentIntents.retrieve(intentId)),
    ).toEqual(ok);
    saga.timeOut(taskToken);

    await expect(resolvePayment(deps)({ orderId })).rejects.toMatchObject({
      name: SagaOutcome.PaymentTimeout,
    });

    expect(await paymentOf(orderId)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'PAYMENT_TIMEOUT',
      lastError: { declineCode: 'insufficient_funds' },
    });
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.cancelled']);
    expect((await stripe.paymentIntents.retrieve(intentId)).status).toBe('canceled');
    // Too late for another card: the intent is canceled.
    const tooLate = await browserStripe()
      .paymentIntents.confirm(intentId, {
        payment_method: 'pm_card_visa',
        client_secret: clientSecret,
      } as Stripe.PaymentIntentConfirmParams)
      .catch((error: Stripe.errors.StripeError) => error.code);
    expect(tooLate).toBe('payment_intent_unexpected_state');
  });
});

describe('refunds and second intents', () => {
  it('a refund Stripe later fails is recorded on the payment once (refund.failed), and nothing else changes', async () => {
    const { orderId, intent } = await startPayment('pm_card_refundFail');
    expect(intent.status).toBe('succeeded');
    expect(await signedDelivery('payment_intent.succeeded', intent)).toEqual(ok);
    expect(await cancelPayment(deps)({ orderId, failure: { Error: 'CUSTOMER_CANCELLED' } })).toEqual({
      status: 'REFUNDED',
    });
    const { refundId } = await paymentOf(orderId);
    const failed = await stripe.refunds.retrieve(refundId!);
    expect(failed.status).toBe('failed');
    const eventsBefore = await typesOf(orderId);

    const body = stripeEvent('refund.failed', failed);
    expect(await deliver(body, sign(body))).toEqual(ok);
    const after = await tableSnapshot();
    expect(await deliver(body, sign(body))).toEqual(ok); // redelivered: a duplicate
    expect(await tableSnapshot()).toBe(after);

    expect(await paymentOf(orderId)).toMatchObject({
      status: 'REFUNDED',
      refundId,
      failedRefundId: refundId,
      refundFailureReason: 'expired_or_canceled_card',
      refundFailedAt: expect.any(String),
    });
    expect(await typesOf(orderId)).toEqual(eventsBefore);
  });

  it('a charge already refunded by hand counts as refunded: compensation records the refund Stripe holds', async () => {
    const { orderId, intent } = await startPayment('pm_card_visa');
    expect(await signedDelivery('payment_intent.succeeded', intent)).toEqual(ok);
    const byHand = await stripe.refunds.create({ payment_intent: intent.id }); // the Dashboard, another key

    expect(await cancelPayment(deps)({ orderId, failure: { Error: 'PAYMENT_TIMEOUT' } })).toEqual({
      status: 'REFUNDED',
    });

    expect(await paymentOf(orderId)).toMatchObject({ status: 'REFUNDED', refundId: byHand.id });
    expect(await refundsAtStripe(intent.id)).toEqual([byHand]);
    expect(await deps.gateway.refund(orderId, intent.id)).toEqual({ refundId: byHand.id });
  });

  it('a late success for a payment whose charge was refunded by hand records REFUNDED instead of failing for days', async () => {
    const { orderId, taskToken, intent } = await startPayment(null);
    saga.timeOut(taskToken);
    await payments.transition(orderId, 'FAILED', { failureCode: 'card_declined' }, undefined, new Date());
    const paid = await customerPays(intent.id);
    const byHand = await stripe.refunds.create({ payment_intent: intent.id });

    expect(await signedDelivery('payment_intent.succeeded', paid)).toEqual(ok);

    expect(await paymentOf(orderId)).toMatchObject({ status: 'REFUNDED', refundId: byHand.id });
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.refunded']);
  });

  it("refunds a second intent's success and keeps the payment's own intent; compensation then refunds that one too", async () => {
    const { orderId, taskToken, intent } = await startPayment('pm_card_visa');
    expect(await signedDelivery('payment_intent.succeeded', intent)).toEqual(ok);
    const recorded = await paymentOf(orderId);
    const second = await secondIntent(orderId);

    const success = stripeEvent('payment_intent.succeeded', second);
    const before = await tableSnapshot();
    expect(await deliver(success, sign(success))).toEqual(ok);

    expect(await paymentOf(orderId)).toEqual(recorded);
    expect(newKeys(before, await tableSnapshot())).toEqual([expect.stringMatching(/^STRIPE_EVENT#evt_/)]);
    expect(await refundsAtStripe(second.id)).toEqual([
      expect.objectContaining({ amount: 2500, status: 'succeeded', metadata: { orderId } }),
    ]);
    // Redelivered: recorded once, refunded once.
    const afterFirst = await tableSnapshot();
    expect(await deliver(success, sign(success))).toEqual(ok);
    expect(await tableSnapshot()).toBe(afterFirst);
    expect(await refundsAtStripe(second.id)).toHaveLength(1);
    // Its cancel or failure changes nothing either.
    expect(await signedDelivery('payment_intent.canceled', { ...second, status: 'canceled' })).toEqual(ok);
    expect(await paymentOf(orderId)).toEqual(recorded);

    // Each intent has its own refund key: the order's own refund is not taken for the second's.
    expect(await cancelPayment(deps)({ orderId, failure: { Error: 'CUSTOMER_CANCELLED' } })).toEqual({
      status: 'REFUNDED',
    });
    const refunded = await paymentOf(orderId);
    expect(refunded).toMatchObject({ status: 'REFUNDED', paymentIntentId: intent.id });
    expect(await refundsAtStripe(intent.id)).toEqual([expect.objectContaining({ id: refunded.refundId })]);
    expect(await typesOf(orderId)).toEqual(['payment.initiated', 'payment.succeeded', 'payment.refunded']);
    expect(saga.heard(taskToken)).toEqual(['succeed']);
  });

  it('a second intent never replaces the recorded one while the payment is open, and a success of another amount is refunded', async () => {
    const { orderId, intent } = await startPayment(null, 1500);
    const open = await paymentOf(orderId);
    const sameAmount = await secondIntent(orderId, 1500);
    const otherAmount = await secondIntent(orderId, 1499);
    const otherCurrency = await secondIntent(orderId, 1500, 'eur');

    for (const paid of [sameAmount, otherAmount, otherCurrency]) {
      expect(await signedDelivery('payment_intent.succeeded', paid)).toEqual(ok);
      expect(await refundsAtStripe(paid.id)).toHaveLength(1);
    }
    expect(await paymentOf(orderId)).toEqual(open);

    // The payment's own intent still settles it.
    expect(await signedDelivery('payment_intent.succeeded', await customerPays(intent.id))).toEqual(ok);
    expect(await paymentOf(orderId)).toMatchObject({ status: 'SUCCEEDED', paymentIntentId: intent.id });
  });

  it('a success of another amount for a payment with no intent recorded is refunded, not adopted', async () => {
    const orderId = `order-${randomUUID()}`;
    const taskToken = `token-${randomUUID()}`;
    await payments.begin({ orderId, amount: 1800, currency: 'usd', taskToken }, new Date());
    const creating = await paymentOf(orderId);
    const paid = await secondIntent(orderId, 1000);

    expect(await signedDelivery('payment_intent.succeeded', paid)).toEqual(ok);

    expect(await paymentOf(orderId)).toEqual(creating);
    expect(await refundsAtStripe(paid.id)).toHaveLength(1);
    expect(saga.calls).toEqual([]);
  });

  it("Stripe's payment_intent.canceled applied before compensation's own write reports the order's reason", async () => {
    const { orderId, taskToken } = await startPayment(null);
    saga.timeOut(taskToken);
    const gateway = deps.gateway;
    const racing: PaymentDeps = {
      ...deps,
      gateway: {
        ...gateway,
        refund: (order, intentId) => gateway.refund(order, intentId),
        cancelIntent: async (order, intentId) => {
          const answer = await gateway.cancelIntent(order, intentId);
          // Stripe's webhook is applied before compensation records the cancel itself.
          const canceled = await stripe.paymentIntents.retrieve(intentId);
          expect(await signedDelivery('payment_intent.canceled', canceled)).toEqual(ok);
          return answer;
        },
      },
    };

    expect(await cancelPayment(racing)({ orderId, failure: { Error: 'PAYMENT_TIMEOUT' } })).toEqual({
      status: 'CANCELLED',
    });

    expect(await paymentOf(orderId)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'PAYMENT_TIMEOUT',
    });
    const cancelled = (await outboxOf(orderId)).filter((event) => event.type === 'payment.cancelled');
    expect(cancelled).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'PAYMENT_TIMEOUT' }) }),
    ]);
  });
});

// --- fuzz ------------------------------------------------------------------------------------------

describe('fuzzing the webhook endpoint', () => {
  const ids = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.stringMatching(/^[a-z]{2,3}_[A-Za-z0-9]{0,30}$/),
    fc.string({ minLength: 2000, maxLength: 3000 }),
  );
  const metadata = fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.string({ maxLength: 80 }), fc.integer())),
    fc.record({
      orderId: fc.oneof(
        fc.string({ maxLength: 80 }).map((id) => `fuzz-${id}`),
        fc.integer(),
      ),
    }),
  );
  const eventish = fc.record(
    {
      id: ids,
      object: fc.constantFrom('event', 'list', '', 'v2.core.event'),
      type: fc.oneof(
        fc.constantFrom(
          'payment_intent.succeeded',
          'payment_intent.payment_failed',
          'payment_intent.canceled',
          'payment_intent.created',
          'charge.refunded',
          'refund.failed',
          'constructor',
          '__proto__',
        ),
        fc.string({ maxLength: 30 }),
      ),
      data: fc.oneof(
        fc.record(
          {
            object: fc.oneof(
              fc.record(
                {
                  id: ids.map((id) => `pi_fuzz_${id}`),
                  object: fc.constantFrom('payment_intent', 'charge', 'refund'),
                  status: fc.oneof(fc.constantFrom('succeeded', 'canceled'), fc.string({ maxLength: 20 })),
                  metadata,
                  last_payment_error: fc.oneof(
                    fc.constant(null),
                    fc.record({ code: fc.string(), decline_code: fc.string(), message: fc.string() }),
                    fc.anything(),
                  ),
                  cancellation_reason: fc.oneof(fc.constant(null), fc.string(), fc.integer()),
                  // As a Refund carries them (refund.failed).
                  payment_intent: fc.oneof(
                    fc.constant(null),
                    ids.map((id) => `pi_fuzz_${id}`),
                    fc.integer(),
                  ),
                  failure_reason: fc.oneof(fc.constant(null), fc.string(), fc.integer()),
                },
                { requiredKeys: [] },
              ),
              fc.anything(),
            ),
          },
          { requiredKeys: [] },
        ),
        fc.anything(),
      ),
    },
    { requiredKeys: [] },
  );
  // Well-formed PaymentIntent events of the handled types, for intents and orders not on record.
  const intentEvents = fc.record({
    id: fc.stringMatching(/^evt_fuzz_[A-Za-z0-9]{1,24}$/),
    object: fc.constant('event'),
    type: fc.constantFrom(
      'payment_intent.succeeded',
      'payment_intent.payment_failed',
      'payment_intent.canceled',
    ),
    data: fc.record({
      object: fc.record({
        id: fc.stringMatching(/^pi_fuzz_[A-Za-z0-9]{1,24}$/),
        object: fc.constant('payment_intent'),
        status: fc.constantFrom('succeeded', 'requires_payment_method', 'canceled'),
        metadata,
      }),
    }),
  });
  const bodies = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 400 }),
    fc.json({ maxDepth: 4 }),
    eventish.map((event) => JSON.stringify(event)),
    intentEvents.map((event) => JSON.stringify(event)),
  );
  const headerValues = fc.oneof(
    fc.constant(undefined),
    fc.string({ maxLength: 200 }),
    fc
      .tuple(
        fc.integer({ min: -1e12, max: 1e12 }),
        fc.array(fc.stringMatching(/^[0-9a-f]{0,70}$/), { maxLength: 3 }),
      )
      .map(([t, signatures]) => [`t=${t}`, ...signatures.map((s) => `v1=${s}`)].join(',')),
  );

  it('arbitrary bodies and Stripe-Signature headers never get a 5xx and never change state', async () => {
    await startPayment('pm_card_visa'); // something on record to leave alone
    const before = await tableSnapshot();
    await fc.assert(
      fc.asyncProperty(bodies, headerValues, fc.boolean(), async (body, signature, base64) => {
        const answer = await deliver(body, signature, { base64 });
        expect(answer.status).toBeLessThan(500);
        expect(answer.status).toBe(400);
      }),
      { numRuns: 200 },
    );
    expect(await tableSnapshot()).toBe(before);
    expect(saga.calls).toEqual([]);
  });

  it('arbitrary bodies signed with the real secret never get a 5xx and change nothing for intents not on record', async () => {
    await startPayment('pm_card_visa');
    const before = await tableSnapshot();
    await fc.assert(
      fc.asyncProperty(bodies, fc.boolean(), async (body, base64) => {
        const answer = await deliver(body, sign(body), { base64 });
        expect([200, 400]).toContain(answer.status);
      }),
      { numRuns: 200 },
    );
    expect(await tableSnapshot()).toBe(before);
    expect(saga.calls).toEqual([]);
  });
});
