import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Payment } from '../../functions/payments/payment.ts';
import {
  dynamoPaymentRepository,
  type PaymentRepository,
} from '../../functions/payments/payment-repository.ts';
import { faultInjector } from '../../infra/local/faults.ts';
import type { LocalRuntime } from '../../infra/local/runtime.ts';
import { countOf, waitForEvents } from '../support/nats-events.ts';
import { pollUntil } from '../support/poll.ts';
import { shop, type Shop } from '../support/shop.ts';
import { startTestRuntime } from '../support/target.ts';

/*
 * A browser checkout on the local runtime: an order without a payment method, confirmed by the
 * customer's browser (the real `stripe` SDK with a publishable key and the order's client secret,
 * as Stripe.js does) against the Stripe emulator, whose signed webhooks reach the webhook Lambda.
 * A declined card leaves the order waiting for another one until the payment timeout.
 */

const TIMEOUT_SECONDS = 10;
const UNIT_PRICE = 1250;

let runtime: LocalRuntime;
let store: Shop;
let payments: PaymentRepository;
let dynamodb: DynamoDBClient;
/** No faults unless a test sets some (and puts them back). */
const faults = faultInjector({ spec: {}, seed: 20261202, log: () => {} });

beforeAll(async () => {
  runtime = await startTestRuntime({
    config: { PAYMENT_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS) },
    faults,
  });
  store = shop(runtime);
  dynamodb = new DynamoDBClient({
    endpoint: runtime.dynamodbEndpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  payments = dynamoPaymentRepository(DynamoDBDocumentClient.from(dynamodb), runtime.tableNames.payments);
});

afterAll(async () => {
  dynamodb?.destroy();
  await runtime?.stop();
});

/** The customer's browser: the shop's publishable key, nothing more. */
function browser(): Stripe {
  const url = new URL(runtime.stripeUrl);
  return new Stripe('pk_test_browser_checkout', {
    host: url.hostname,
    port: Number(url.port),
    protocol: 'http',
    maxNetworkRetries: 0,
  });
}

/** Confirms with the client secret as Stripe.js does; a decline is the answer, not a failure. */
const confirmInBrowser = (paymentIntentId: string, clientSecret: string, paymentMethod: string) =>
  browser()
    .paymentIntents.confirm(paymentIntentId, {
      payment_method: paymentMethod,
      client_secret: clientSecret,
    } as Stripe.PaymentIntentConfirmParams)
    .catch((error: unknown) => {
      if (error instanceof Stripe.errors.StripeCardError) return error;
      throw error;
    });

/** Places an order for `quantity` of a fresh SKU with 10 in stock, and waits for its client secret. */
async function waitingOrder(quantity: number) {
  const sku = store.sku();
  await store.putProduct(sku, 10, UNIT_PRICE);
  const placed = await store.placeOrder({ customerId: 'cust-browser', items: [{ sku, quantity }] });
  const pending = await store.waitFor(
    placed.orderId,
    (order) => order.sagaState === 'PAYMENT_PENDING' && Boolean(order.payment?.clientSecret),
  );
  const { paymentIntentId, clientSecret } = pending.payment!;
  return { sku, orderId: placed.orderId, paymentIntentId, clientSecret: clientSecret! };
}

/** The payment record once the webhook has recorded a decline on it. */
const declineRecorded = (orderId: string, declineCode: string): Promise<Payment | undefined> =>
  pollUntil(
    `the decline of order ${orderId} recorded`,
    () => payments.get(orderId),
    (payment) => payment?.lastError?.declineCode === declineCode,
  );

describe('a browser checkout whose first card is declined', () => {
  it('waits for another card; paying with it completes the order, stock sold and the intent succeeded', async () => {
    const { sku, orderId, paymentIntentId, clientSecret } = await waitingOrder(2);

    const declined = await confirmInBrowser(paymentIntentId, clientSecret, 'pm_card_chargeDeclined');
    expect(declined).toBeInstanceOf(Stripe.errors.StripeCardError);
    const payment = await declineRecorded(orderId, 'generic_decline');
    expect(payment).toMatchObject({
      status: 'INITIATED',
      confirmedBy: 'browser',
      lastError: {
        code: 'card_declined',
        declineCode: 'generic_decline',
        message: 'Your card was declined.',
      },
    });

    // The decline is delivered and applied: the saga still waits, and Stripe waits for another card.
    const waiting = await store.getOrder(orderId);
    expect(waiting).toMatchObject({ status: 'PAYMENT_PENDING', sagaState: 'PAYMENT_PENDING' });
    // The order shows the customer why, with the secret to try another card.
    expect(waiting.payment).toEqual({
      paymentIntentId,
      status: 'requires_payment_method',
      clientSecret,
      lastError: {
        code: 'card_declined',
        declineCode: 'generic_decline',
        message: 'Your card was declined.',
      },
    });
    expect(await store.stripe.paymentIntents.retrieve(paymentIntentId)).toMatchObject({
      status: 'requires_payment_method',
      last_payment_error: { decline_code: 'generic_decline' },
    });
    expect(await store.getProduct(sku)).toMatchObject({ available: 8, reserved: 2 });

    const paid = await confirmInBrowser(paymentIntentId, clientSecret, 'pm_card_visa');
    expect(paid).toMatchObject({ status: 'succeeded', amount: 2 * UNIT_PRICE, last_payment_error: null });

    const settled = await store.settled(orderId);
    expect(settled).toMatchObject({ status: 'COMPLETED', sagaState: 'COMPLETED', amount: 2 * UNIT_PRICE });
    expect(settled.payment).toEqual({ paymentIntentId, status: 'succeeded' });
    expect(await store.getProduct(sku)).toMatchObject({ available: 8, reserved: 0 });
    const money = await store.moneyAtStripe(orderId);
    expect(money.intents).toEqual([
      { id: paymentIntentId, status: 'succeeded', amount: 2 * UNIT_PRICE, refunded: 0 },
    ]);
    expect(money.kept).toBe(2 * UNIT_PRICE);
    expect(await payments.get(orderId)).toMatchObject({ status: 'SUCCEEDED' });

    // payment.failed is final for its consumers: the retried decline is not one.
    const events = await waitForEvents(
      runtime.natsUrl,
      orderId,
      (seen) => countOf(seen, 'order.completed') > 0,
    );
    expect(countOf(events, 'payment.failed')).toBe(0);
    expect(countOf(events, 'payment.succeeded')).toBe(1);
  }, 60_000);

  it('with no other card before the payment timeout is cancelled PAYMENT_TIMEOUT: intent canceled, stock back', async () => {
    const { sku, orderId, paymentIntentId, clientSecret } = await waitingOrder(1);

    await confirmInBrowser(paymentIntentId, clientSecret, 'pm_card_chargeDeclinedInsufficientFunds');
    await declineRecorded(orderId, 'insufficient_funds');
    expect(await store.getOrder(orderId)).toMatchObject({ status: 'PAYMENT_PENDING' });

    const settled = await store.settled(orderId, (TIMEOUT_SECONDS + 30) * 1000);
    expect(settled).toMatchObject({
      status: 'CANCELLED',
      sagaState: 'COMPENSATED',
      cancellationReason: 'PAYMENT_TIMEOUT',
    });
    expect(await store.getProduct(sku)).toMatchObject({ available: 10, reserved: 0 });
    const money = await store.moneyAtStripe(orderId);
    expect(money.intents.map((intent) => intent.status)).toEqual(['canceled']);
    expect(money.kept).toBe(0);
    expect(await payments.get(orderId)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'PAYMENT_TIMEOUT',
      lastError: { declineCode: 'insufficient_funds' },
    });
  }, 60_000);

  it('with every webhook lost (a Stripe delivery outage), the second card still completes the order at the timeout: money kept once', async () => {
    const { sku, orderId, paymentIntentId, clientSecret } = await waitingOrder(1);
    faults.set({ 'webhook.drop': 1 });
    try {
      await confirmInBrowser(paymentIntentId, clientSecret, 'pm_card_chargeDeclined');
      const paid = await confirmInBrowser(paymentIntentId, clientSecret, 'pm_card_visa');
      expect(paid).toMatchObject({ status: 'succeeded' });
      // No webhook told anyone: the saga waits, then asks Stripe, which holds the truth.
      expect(await store.getOrder(orderId)).toMatchObject({ sagaState: 'PAYMENT_PENDING' });
      const settled = await store.settled(orderId, (TIMEOUT_SECONDS + 30) * 1000);
      expect(settled).toMatchObject({ status: 'COMPLETED', sagaState: 'COMPLETED' });
      expect(faults.counts()['webhook.drop']).toBeGreaterThanOrEqual(2);
    } finally {
      faults.set({});
    }
    expect(await store.getProduct(sku)).toMatchObject({ available: 9, reserved: 0 });
    const money = await store.moneyAtStripe(orderId);
    expect(money.intents).toEqual([
      { id: paymentIntentId, status: 'succeeded', amount: UNIT_PRICE, refunded: 0 },
    ]);
    expect(money.kept).toBe(UNIT_PRICE);
  }, 60_000);
});
