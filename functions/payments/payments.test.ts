import type Stripe from 'stripe';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { logger } from '../../shared/logger.ts';
import { SagaOutcome } from '../../shared/saga.ts';
import { InMemoryPayments } from './in-memory-payment-repository.ts';
import { REFUND_FAILED, STRAY_CHARGE_REFUNDED, type Payment, type RequestPaymentCommand } from './payment.ts';
import {
  applyStripeEvent,
  cancelForCustomer,
  cancelPayment,
  checkoutFor,
  resolvePayment,
  createPayment,
  notifySaga,
  requestPayment,
  type PaymentDeps,
} from './payments.ts';
import type { SagaNotifier } from './saga-notifier.ts';
import { PaymentProviderUnavailableError, type PaymentGateway } from './stripe-gateway.ts';

const NOW = new Date('2025-01-01T00:00:00.000Z');
const ORDER = 'order-1';

/** Stripe test mode in memory: one intent per order (the gateway's idempotency key), outcomes by payment method. */
class FakeGateway implements PaymentGateway {
  readonly calls: string[] = [];
  readonly intents = new Map<string, { id: string; orderId: string; status: string }>();
  refunds = 0;
  /** Runs when confirmIntent is called, before it answers: lets a test look at the state at that moment. */
  onConfirm: (paymentIntentId: string) => Promise<void> = async () => {};
  /** What cancelIntent answers; `succeeded` mimics an intent that was paid before it could be canceled. */
  cancelAnswer: 'canceled' | 'succeeded' = 'canceled';

  async createIntent(request: { orderId: string; amount: number; currency: string; attempt?: number }) {
    this.calls.push('createIntent');
    const id = `pi_${request.orderId}`;
    const intent = this.intents.get(id) ?? {
      id,
      orderId: request.orderId,
      status: 'requires_payment_method',
    };
    this.intents.set(id, intent);
    return { id: intent.id, status: intent.status, clientSecret: `${intent.id}_secret_test` };
  }

  async confirmIntent(_orderId: string, paymentIntentId: string, paymentMethodId: string) {
    this.calls.push(`confirmIntent:${paymentIntentId}:${paymentMethodId}`);
    await this.onConfirm(paymentIntentId);
    const intent = this.intents.get(paymentIntentId);
    if (!intent) throw new Error(`no such PaymentIntent ${paymentIntentId}`);
    if (paymentMethodId === 'pm_card_chargeDeclined') {
      intent.status = 'requires_payment_method';
      return {
        status: intent.status,
        failureCode: 'generic_decline',
        failureMessage: 'Your card was declined.',
      };
    }
    intent.status = paymentMethodId === 'pm_card_authenticationRequired' ? 'requires_action' : 'succeeded';
    return { status: intent.status };
  }

  async cancelIntent(_orderId: string, paymentIntentId: string) {
    this.calls.push(`cancelIntent:${paymentIntentId}`);
    return { status: this.cancelAnswer };
  }

  async refund(_orderId: string, paymentIntentId: string) {
    this.calls.push(`refund:${paymentIntentId}`);
    this.refunds += 1;
    return { refundId: `re_${this.refunds}` };
  }

  verifyWebhook(): Stripe.Event {
    throw new Error('not used by the use cases');
  }
}

type SagaCall =
  | { kind: 'succeed'; token: string; output: unknown }
  | { kind: 'fail'; token: string; error: string; cause: unknown };

class RecordingSaga implements SagaNotifier {
  readonly calls: SagaCall[] = [];
  /** `closed` mimics a step that no longer waits (timed out, execution over). */
  answer: 'sent' | 'closed' = 'sent';

  async succeed(token: string, output: unknown) {
    this.calls.push({ kind: 'succeed', token, output });
    return this.answer;
  }

  async fail(token: string, error: string, cause: unknown) {
    this.calls.push({ kind: 'fail', token, error, cause });
    return this.answer;
  }
}

type Context = ReturnType<typeof setup>;

function setup() {
  const payments = new InMemoryPayments({
    seed: {
      orderId: ORDER,
      amount: 2500,
      currency: 'usd',
      taskToken: 'token-1',
      createdAt: NOW.toISOString(),
      updatedAt: NOW.toISOString(),
    },
  });
  const gateway = new FakeGateway();
  const saga = new RecordingSaga();
  const deps: PaymentDeps = { payments, gateway, saga, now: () => NOW };
  return {
    payments,
    gateway,
    saga,
    deps,
    create: createPayment(deps),
    request: requestPayment(deps),
    apply: applyStripeEvent(deps),
    cancel: cancelPayment(deps),
    resolve: resolvePayment(deps),
    customerCancel: cancelForCustomer(deps),
  };
}

const command = (overrides: Partial<RequestPaymentCommand> = {}): RequestPaymentCommand => ({
  orderId: ORDER,
  customerId: 'cust-1',
  amount: 2500,
  currency: 'usd',
  paymentMethodId: 'pm_card_visa',
  taskToken: 'token-1',
  ...overrides,
});

function stripeEvent(
  id: string,
  type: string,
  intent: Partial<Stripe.PaymentIntent> & { id: string },
): Stripe.Event {
  return {
    id,
    object: 'event',
    type,
    created: NOW.getTime() / 1000,
    data: {
      object: {
        object: 'payment_intent',
        amount: 2500,
        currency: 'usd',
        metadata: { orderId: ORDER },
        ...intent,
      },
    },
  } as unknown as Stripe.Event;
}

const succeeded = (id = 'evt_succeeded', intentId = `pi_${ORDER}`) =>
  stripeEvent(id, 'payment_intent.succeeded', { id: intentId, status: 'succeeded' });

const paymentFailed = (id = 'evt_failed', intentId = `pi_${ORDER}`) =>
  stripeEvent(id, 'payment_intent.payment_failed', {
    id: intentId,
    status: 'requires_payment_method',
    last_payment_error: {
      type: 'card_error',
      code: 'card_declined',
      decline_code: 'insufficient_funds',
      message: 'Your card has insufficient funds.',
    } as Stripe.PaymentIntent.LastPaymentError,
  });

const canceled = (id = 'evt_canceled', intentId = `pi_${ORDER}`) =>
  stripeEvent(id, 'payment_intent.canceled', {
    id: intentId,
    status: 'canceled',
    cancellation_reason: 'abandoned',
  });

/**
 * A payment whose intent was created and recorded and whose step waits, so only the webhook reports
 * the outcome: by default the step confirmed it with the order's payment method and Stripe asks for
 * 3-D Secure (a decline is then final); with `null`, the order has no payment method and the
 * customer confirms it in the browser with the client secret (a decline may be retried).
 */
async function initiated(paymentMethodId: string | null = 'pm_card_authenticationRequired') {
  const context = setup();
  await context.request(command({ paymentMethodId }));
  context.gateway.calls.length = 0;
  return context;
}

describe('refund.failed', () => {
  const refundFailed = (id: string, refundId: string, intentId = `pi_${ORDER}`) =>
    ({
      id,
      object: 'event',
      type: 'refund.failed',
      created: NOW.getTime() / 1000,
      data: {
        object: {
          id: refundId,
          object: 'refund',
          status: 'failed',
          payment_intent: intentId,
          failure_reason: 'expired_or_canceled_card',
          metadata: { orderId: ORDER },
        },
      },
    }) as unknown as Stripe.Event;

  it('records the failure on the refunded payment once, logs it for the alarm, and changes nothing else', async () => {
    const { payments, saga, apply } = setup();
    payments.put({ status: 'REFUNDED', paymentIntentId: `pi_${ORDER}`, refundId: 're_1' });
    const eventCount = payments.outbox.length;
    const warn = vi.spyOn(logger, 'warn');
    onTestFinished(() => warn.mockRestore());

    expect(await apply(refundFailed('evt_rf', 're_1'))).toBe('refund-failed');
    expect(await apply(refundFailed('evt_rf', 're_1'))).toBe('duplicate');

    expect(await payments.get(ORDER)).toMatchObject({
      status: 'REFUNDED',
      refundId: 're_1',
      failedRefundId: 're_1',
      refundFailedAt: NOW.toISOString(),
      refundFailureReason: 'expired_or_canceled_card',
    });
    expect(warn.mock.calls.filter(([message]) => message === REFUND_FAILED)).toHaveLength(1);
    expect(payments.outbox).toHaveLength(eventCount);
    expect(saga.calls).toEqual([]);
  });

  it('is recorded even when it arrives before the payment recorded the refund (compensation still running)', async () => {
    const { payments, apply } = setup();
    payments.put({ status: 'SUCCEEDED', paymentIntentId: `pi_${ORDER}` });

    expect(await apply(refundFailed('evt_early', 're_early'))).toBe('refund-failed');

    expect(await payments.get(ORDER)).toMatchObject({ status: 'SUCCEEDED', failedRefundId: 're_early' });
  });

  it("a stray charge's failed refund leaves the payment as it is, but is logged once", async () => {
    const { payments, apply } = setup();
    payments.put({ status: 'SUCCEEDED', paymentIntentId: `pi_${ORDER}` });
    const before = await payments.get(ORDER);
    const warn = vi.spyOn(logger, 'warn');
    onTestFinished(() => warn.mockRestore());

    expect(await apply(refundFailed('evt_rf2', 're_stray', 'pi_dashboard'))).toBe('refund-failed');
    expect(await apply(refundFailed('evt_rf2', 're_stray', 'pi_dashboard'))).toBe('duplicate');

    expect(await payments.get(ORDER)).toEqual(before);
    expect(warn.mock.calls.filter(([message]) => message === REFUND_FAILED)).toHaveLength(1);
  });

  it('is refused as not a Refund when its data.object is not one', async () => {
    const { apply } = setup();
    const event = refundFailed('evt_rf3', 're_1') as unknown as { data: { object: Record<string, unknown> } };
    event.data.object.object = 'charge';
    await expect(apply(event as unknown as Stripe.Event)).rejects.toThrow(/not a Refund event/);
  });
});

describe('createPayment', () => {
  const creation = { orderId: ORDER, customerId: 'cust-1', amount: 2500, currency: 'usd' };

  it('creates the payment and its intent unconfirmed, records both, and keeps the client secret to itself', async () => {
    const { payments, gateway, saga, create } = setup();

    // The answer lands in the execution's state and history: no client secret in it.
    expect(await create(creation)).toEqual({
      paymentIntentId: `pi_${ORDER}`,
      status: 'requires_payment_method',
    });

    expect(gateway.calls).toEqual(['createIntent']);
    const payment = await payments.get(ORDER);
    expect(payment).toMatchObject({
      status: 'INITIATED',
      amount: 2500,
      paymentIntentId: `pi_${ORDER}`,
      clientSecret: `pi_${ORDER}_secret_test`,
    });
    expect(payment?.taskToken).toBeUndefined();
    expect(payments.eventsOf('payment.initiated')).toHaveLength(1);
    expect(saga.calls).toEqual([]);
  });

  it('answers the same when repeated, without a second intent or payment.initiated', async () => {
    const { payments, gateway, create } = setup();
    const first = await create(creation);

    expect(await create(creation)).toEqual(first);
    expect(gateway.calls).toEqual(['createIntent']);
    expect(payments.eventsOf('payment.initiated')).toHaveLength(1);
  });

  it('then the payment step confirms the same intent with the order payment method: one intent in all', async () => {
    const { payments, gateway, create, request } = setup();
    await create(creation);

    expect(await request(command())).toEqual({ paymentIntentId: `pi_${ORDER}`, status: 'succeeded' });
    expect(gateway.calls).toEqual(['createIntent', `confirmIntent:pi_${ORDER}:pm_card_visa`]);
    expect(await payments.get(ORDER)).toMatchObject({ taskToken: 'token-1', status: 'SUCCEEDED' });
  });

  it.each([
    [0, 'usd', 'amount_too_small'],
    [49, 'usd', 'amount_too_small'],
    [29, 'gbp', 'amount_too_small'],
    [100_000_000, 'usd', 'amount_too_large'],
  ])('refuses %i %s (%s) before any payment or PaymentIntent exists', async (amount, currency, code) => {
    const { payments, gateway, create } = setup();

    await expect(create({ ...creation, amount, currency })).rejects.toMatchObject({
      name: SagaOutcome.PaymentAmountRefused,
      code,
    });
    expect(gateway.calls).toEqual([]);
    expect(await payments.get(ORDER)).toBeUndefined();
  });

  it('takes the smallest amount Stripe charges (50 usd cents)', async () => {
    const { create } = setup();
    expect(await create({ ...creation, amount: 50 })).toMatchObject({ status: 'requires_payment_method' });
  });

  it('after a 5xx spent the creation key, creates under the next key (one intent recorded)', async () => {
    const { payments, gateway, create } = setup();
    const attempts: number[] = [];
    const real = gateway.createIntent.bind(gateway);
    gateway.createIntent = async (request) => {
      attempts.push(request.attempt ?? 0);
      if (attempts.length === 1) throw new PaymentProviderUnavailableError('api_error', { keySpent: true });
      return real(request);
    };

    await expect(create(creation)).rejects.toMatchObject({ name: 'PaymentProviderUnavailableError' });
    expect(await create(creation)).toMatchObject({ paymentIntentId: `pi_${ORDER}` });
    expect(attempts).toEqual([0, 1]);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'INITIATED', intentAttempt: 1 });
  });

  it('answers the settled intent once the payment is settled, creating nothing', async () => {
    const { payments, gateway, create } = setup();
    payments.put({
      status: 'SUCCEEDED',
      paymentIntentId: `pi_${ORDER}`,
      stripeStatus: 'succeeded',
      clientSecret: `pi_${ORDER}_secret_test`,
    });

    expect(await create(creation)).toEqual({ paymentIntentId: `pi_${ORDER}`, status: 'succeeded' });
    expect(gateway.calls).toEqual([]);
  });

  it('creates no intent for a payment compensation already closed', async () => {
    const { payments, gateway, create } = setup();
    payments.put({ status: 'CANCELLED', cancellationReason: 'CUSTOMER_CANCELLED' });

    expect(await create(creation)).toEqual({ paymentIntentId: null, status: 'canceled' });
    expect(gateway.calls).toEqual([]);
  });
});

describe('requestPayment', () => {
  it("a confirm answered canceled, because the customer cancelled meanwhile, keeps the customer's reason", async () => {
    // The customer's cancel notes its reason, then cancels the intent at Stripe, between this step's
    // begin and Stripe's answer to its confirm: Stripe answers `canceled`.
    const { payments, gateway, saga, request } = setup();
    gateway.confirmIntent = async () => {
      await payments.noteCancellationReason(ORDER, 'CUSTOMER_CANCELLED', NOW, { keepExisting: true });
      return { status: 'canceled' };
    };

    await request(command({ paymentMethodId: 'pm_card_authenticationRequired' }));

    expect(await payments.get(ORDER)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'CUSTOMER_CANCELLED',
    });
    expect(saga.calls).toEqual([expect.objectContaining({ kind: 'fail', error: 'CustomerCancelledError' })]);
    expect(payments.events().filter((event) => event.type === 'payment.cancelled')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'CUSTOMER_CANCELLED' }) }),
    ]);
  });

  it('stores the task token, creates the intent unconfirmed and records it before confirming it', async () => {
    const { payments, gateway, request } = setup();
    let recordedAtConfirm: Payment | undefined;
    gateway.onConfirm = async () => {
      recordedAtConfirm = await payments.get(ORDER);
    };

    const result = await request(command());

    expect(gateway.calls).toEqual(['createIntent', `confirmIntent:pi_${ORDER}:pm_card_visa`]);
    expect(recordedAtConfirm).toMatchObject({
      status: 'INITIATED',
      paymentIntentId: `pi_${ORDER}`,
      stripeStatus: 'requires_payment_method',
    });
    expect(result).toEqual({ paymentIntentId: `pi_${ORDER}`, status: 'succeeded' });
    // Stripe answered the success at once: the step records it and tells the saga, webhook or not.
    expect(await payments.get(ORDER)).toMatchObject({
      orderId: ORDER,
      amount: 2500,
      currency: 'usd',
      status: 'SUCCEEDED',
      paymentIntentId: `pi_${ORDER}`,
      taskToken: 'token-1',
      notifiedToken: 'token-1',
    });
    expect(payments.events().slice(0, 1)).toEqual([
      expect.objectContaining({
        type: 'payment.initiated',
        subject: ORDER,
        time: NOW.toISOString(),
        data: {
          orderId: ORDER,
          paymentIntentId: `pi_${ORDER}`,
          amount: 2500,
          currency: 'usd',
          status: 'requires_payment_method',
        },
      }),
    ]);
  });

  it('never confirms an intent whose payment compensation closed while it was being created', async () => {
    const { payments, gateway, request, deps } = setup();
    const create = gateway.createIntent.bind(gateway);
    gateway.createIntent = async (intent) => {
      await cancelPayment(deps)({ orderId: ORDER, failure: { Error: 'PAYMENT_TIMEOUT' } });
      return create(intent);
    };

    expect(await request(command())).toMatchObject({ status: 'canceled' });
    expect(gateway.calls).toEqual(['createIntent', `cancelIntent:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'CANCELLED' });
    expect(payments.eventsOf('payment.initiated')).toHaveLength(0);
  });

  it('leaves the intent unconfirmed when the order carries no payment method', async () => {
    const { payments, gateway, request } = setup();

    const result = await request(command({ paymentMethodId: undefined }));

    expect(gateway.calls).toEqual(['createIntent']);
    expect(result).toEqual({ paymentIntentId: `pi_${ORDER}`, status: 'requires_payment_method' });
    expect(await payments.get(ORDER)).toMatchObject({ status: 'INITIATED', paymentIntentId: `pi_${ORDER}` });
    expect(payments.eventsOf('payment.initiated')).toHaveLength(1);
  });

  it('records a decline Stripe answered at once and fails the step with it, webhook or not', async () => {
    const { payments, saga, request } = setup();

    const result = await request(command({ paymentMethodId: 'pm_card_chargeDeclined' }));

    expect(result).toEqual({ paymentIntentId: `pi_${ORDER}`, status: 'requires_payment_method' });
    expect(await payments.get(ORDER)).toMatchObject({ status: 'FAILED', failureCode: 'generic_decline' });
    expect(payments.eventsOf('payment.failed')).toHaveLength(1);
    expect(saga.calls).toEqual([
      expect.objectContaining({ kind: 'fail', token: 'token-1', error: SagaOutcome.PaymentDeclined }),
    ]);
  });

  it('does not tell the saga anything while the payment is still open', async () => {
    const { saga, request } = setup();
    await request(command({ paymentMethodId: 'pm_card_authenticationRequired' }));
    await request(command({ paymentMethodId: null, taskToken: 'token-2' }));
    expect(saga.calls).toEqual([]);
  });

  it('a success reported at once and then by the webhook is one success, one event, one notice', async () => {
    const { payments, saga, request, apply } = setup();
    await request(command());

    expect(await apply(succeeded())).toBe('ignored');
    expect(payments.eventsOf('payment.succeeded')).toHaveLength(1);
    expect(saga.calls.map((call) => call.kind)).toEqual(['succeed']);
  });

  it('on a retry with a new token reuses the recorded intent: no second intent, no second payment.initiated', async () => {
    const { payments, gateway, request } = await initiated();

    const result = await request(command({ taskToken: 'token-2' }));

    expect(gateway.calls).toEqual([`confirmIntent:pi_${ORDER}:pm_card_visa`]);
    expect(gateway.intents.size).toBe(1);
    expect(result.paymentIntentId).toBe(`pi_${ORDER}`);
    expect(payments.eventsOf('payment.initiated')).toHaveLength(1);
    expect(await payments.get(ORDER)).toMatchObject({
      status: 'SUCCEEDED',
      paymentIntentId: `pi_${ORDER}`,
      taskToken: 'token-2',
    });
  });

  it('when the payment already settled, tells the saga at once with the new token and does not call Stripe', async () => {
    const { payments, gateway, saga, request, apply } = await initiated();
    saga.answer = 'closed'; // the first attempt's step is gone
    await apply(succeeded());
    saga.calls.length = 0;
    saga.answer = 'sent';

    const result = await request(command({ taskToken: 'token-2' }));

    expect(gateway.calls).toEqual([]);
    expect(result).toEqual({ paymentIntentId: `pi_${ORDER}`, status: 'SUCCEEDED' });
    expect(saga.calls).toEqual([
      {
        kind: 'succeed',
        token: 'token-2',
        output: { paymentIntentId: `pi_${ORDER}`, status: 'succeeded', amount: 2500, currency: 'usd' },
      },
    ]);
    expect(await payments.get(ORDER)).toMatchObject({ taskToken: 'token-2', notifiedToken: 'token-2' });
    expect(payments.eventsOf('payment.initiated')).toHaveLength(1);
  });

  it('when the payment already failed, fails the retried step with PaymentDeclinedError', async () => {
    const { saga, gateway, request, apply } = await initiated();
    await apply(paymentFailed());
    saga.calls.length = 0;

    await request(command({ taskToken: 'token-2' }));

    expect(gateway.calls).toEqual([]);
    expect(saga.calls).toEqual([
      expect.objectContaining({ kind: 'fail', token: 'token-2', error: SagaOutcome.PaymentDeclined }),
    ]);
  });
});

describe('applyStripeEvent', () => {
  it('payment_intent.succeeded settles the payment as SUCCEEDED and tells the saga once', async () => {
    const { payments, saga, apply } = await initiated();

    expect(await apply(succeeded())).toBe('applied');

    expect(await payments.get(ORDER)).toMatchObject({
      status: 'SUCCEEDED',
      stripeStatus: 'succeeded',
      notifiedToken: 'token-1',
    });
    expect(payments.eventsOf('payment.succeeded')).toEqual([
      expect.objectContaining({
        subject: ORDER,
        data: { orderId: ORDER, paymentIntentId: `pi_${ORDER}`, amount: 2500, currency: 'usd' },
      }),
    ]);
    expect(saga.calls).toEqual([
      {
        kind: 'succeed',
        token: 'token-1',
        output: { paymentIntentId: `pi_${ORDER}`, status: 'succeeded', amount: 2500, currency: 'usd' },
      },
    ]);
  });

  it('payment_intent.payment_failed settles the payment as FAILED with the decline code and fails the step', async () => {
    const { payments, saga, apply } = await initiated();

    expect(await apply(paymentFailed())).toBe('applied');

    expect(await payments.get(ORDER)).toMatchObject({
      status: 'FAILED',
      failureCode: 'insufficient_funds',
      failureMessage: 'Your card has insufficient funds.',
    });
    expect(payments.eventsOf('payment.failed')).toEqual([
      expect.objectContaining({
        data: {
          orderId: ORDER,
          paymentIntentId: `pi_${ORDER}`,
          amount: 2500,
          currency: 'usd',
          reason: 'DECLINED',
          failureCode: 'insufficient_funds',
        },
      }),
    ]);
    expect(saga.calls).toEqual([
      {
        kind: 'fail',
        token: 'token-1',
        error: SagaOutcome.PaymentDeclined,
        cause: {
          paymentIntentId: `pi_${ORDER}`,
          failureCode: 'insufficient_funds',
          message: 'Your card has insufficient funds.',
        },
      },
    ]);
  });

  it('a failure without a decline code falls back to the error code', async () => {
    const { payments, apply } = await initiated();
    const event = stripeEvent('evt_failed', 'payment_intent.payment_failed', {
      id: `pi_${ORDER}`,
      status: 'requires_payment_method',
      last_payment_error: {
        type: 'card_error',
        code: 'expired_card',
        message: 'Your card has expired.',
      } as Stripe.PaymentIntent.LastPaymentError,
    });

    await apply(event);

    expect(await payments.get(ORDER)).toMatchObject({ status: 'FAILED', failureCode: 'expired_card' });
  });

  it('payment_intent.canceled settles the payment as CANCELLED and fails the step with PAYMENT_CANCELED', async () => {
    const { payments, saga, apply } = await initiated();

    expect(await apply(canceled())).toBe('applied');

    expect(await payments.get(ORDER)).toMatchObject({ status: 'CANCELLED', stripeStatus: 'canceled' });
    expect(payments.eventsOf('payment.cancelled')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'abandoned' }) }),
    ]);
    expect(saga.calls).toEqual([
      expect.objectContaining({ kind: 'fail', token: 'token-1', error: SagaOutcome.PaymentCanceled }),
    ]);
  });

  it('applies the same event id once: the second delivery is a duplicate, without a second event or saga call', async () => {
    const { payments, saga, apply } = await initiated();

    expect(await apply(succeeded('evt_1'))).toBe('applied');
    expect(await apply(succeeded('evt_1'))).toBe('duplicate');

    expect(payments.eventsOf('payment.succeeded')).toHaveLength(1);
    expect(saga.calls).toHaveLength(1);
  });

  it('a duplicate delivery still tells the saga when the first delivery stopped before it could', async () => {
    const { payments, saga, apply } = await initiated();
    await payments.transition(ORDER, 'SUCCEEDED', {}, undefined, NOW, 'evt_1');

    expect(await apply(succeeded('evt_1'))).toBe('duplicate');

    expect(saga.calls).toEqual([expect.objectContaining({ kind: 'succeed', token: 'token-1' })]);
    expect(await payments.get(ORDER)).toMatchObject({ notifiedToken: 'token-1' });
  });

  it('refunds a success that arrives after a failure: REFUNDED, payment.refunded, the saga hears only the failure', async () => {
    const { payments, gateway, saga, apply } = await initiated();
    await apply(paymentFailed());

    expect(await apply(succeeded())).toBe('refunded');

    expect(gateway.calls).toEqual([`refund:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({
      status: 'REFUNDED',
      refundId: 're_1',
      failureCode: 'insufficient_funds',
    });
    expect(payments.events().map((event) => event.type)).toEqual([
      'payment.initiated',
      'payment.failed',
      'payment.refunded',
    ]);
    expect(payments.eventsOf('payment.refunded')).toEqual([
      expect.objectContaining({
        data: expect.objectContaining({ reason: 'PAYMENT_FAILED', refundId: 're_1' }),
      }),
    ]);
    expect(saga.calls.map((call) => call.kind)).toEqual(['fail']);
  });

  it('refunds a success that arrives after compensation cancelled the payment, reporting why it was cancelled', async () => {
    const { payments, gateway, saga, apply, cancel } = await initiated();
    saga.answer = 'closed'; // the payment step timed out, which is why compensation ran
    await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_TIMEOUT' } });
    gateway.calls.length = 0;

    expect(await apply(succeeded('evt_late'))).toBe('refunded');

    expect(gateway.calls).toEqual([`refund:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'REFUNDED', refundId: 're_1' });
    expect(payments.eventsOf('payment.succeeded')).toEqual([]);
    expect(payments.eventsOf('payment.refunded')).toEqual([
      expect.objectContaining({
        data: expect.objectContaining({ reason: 'PAYMENT_TIMEOUT', refundId: 're_1' }),
      }),
    ]);
    // Never a success: the closed step is told the payment was cancelled, and that is all.
    expect(saga.calls).toEqual([
      expect.objectContaining({ kind: 'fail', error: SagaOutcome.PaymentTimeout }),
    ]);

    // Delivered again (Stripe retries for days): recognised by its id, nothing refunded twice.
    expect(await apply(succeeded('evt_late'))).toBe('duplicate');
    // Another success event for the same intent: the money is already back.
    expect(await apply(succeeded('evt_later'))).toBe('ignored');
    expect(gateway.refunds).toBe(1);
    expect(payments.eventsOf('payment.refunded')).toHaveLength(1);
  });

  it('refunds the intent the event names when the payment was closed before any intent was recorded', async () => {
    const { payments, gateway, apply, cancel } = setup();
    payments.put({ status: 'CREATING' });
    await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_TIMEOUT' } });

    expect(await apply(succeeded('evt_1', 'pi_unrecorded'))).toBe('refunded');

    expect(gateway.calls).toEqual(['refund:pi_unrecorded']);
    expect(await payments.get(ORDER)).toMatchObject({
      status: 'REFUNDED',
      paymentIntentId: 'pi_unrecorded',
    });
    expect(payments.eventsOf('payment.refunded')).toEqual([
      expect.objectContaining({
        data: expect.objectContaining({ paymentIntentId: 'pi_unrecorded', reason: 'PAYMENT_TIMEOUT' }),
      }),
    ]);
  });

  it('a late failure or cancel after a late-success refund changes nothing', async () => {
    const { payments, apply } = await initiated();
    await apply(paymentFailed('evt_1'));
    await apply(succeeded('evt_2'));
    const before = await payments.get(ORDER);
    const eventCount = payments.outbox.length;

    expect(await apply(paymentFailed('evt_3'))).toBe('ignored');
    expect(await apply(canceled('evt_4'))).toBe('ignored');

    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.outbox).toHaveLength(eventCount);
  });

  it.each([
    ['no id', { object: 'event', type: 'payment_intent.succeeded', data: { object: {} } }],
    ['no data', { id: 'evt_1', object: 'event', type: 'payment_intent.succeeded' }],
    [
      'a PaymentIntent without an id',
      {
        id: 'evt_1',
        type: 'payment_intent.succeeded',
        data: { object: { object: 'payment_intent', status: 'succeeded' } },
      },
    ],
    [
      'another object under a PaymentIntent type',
      {
        id: 'evt_1',
        type: 'payment_intent.succeeded',
        data: { object: { id: 'ch_1', object: 'charge', status: 'succeeded' } },
      },
    ],
    [
      'metadata that is not a map of strings',
      {
        id: 'evt_1',
        type: 'payment_intent.succeeded',
        data: {
          object: { id: 'pi_1', object: 'payment_intent', status: 'succeeded', metadata: { orderId: 7 } },
        },
      },
    ],
  ])('refuses an event with %s as InvalidStripeEventError, changing nothing', async (_, event) => {
    const { payments, gateway, saga, apply } = await initiated();
    const before = await payments.get(ORDER);

    await expect(apply(event as unknown as Stripe.Event)).rejects.toMatchObject({
      name: 'InvalidStripeEventError',
      code: 'VALIDATION_FAILED',
    });

    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.stripeEvents.size).toBe(0);
    expect(gateway.calls).toEqual([]);
    expect(saga.calls).toEqual([]);
  });

  it('ignores a failure that arrives after a success, and changes nothing', async () => {
    const { payments, saga, apply } = await initiated();
    await apply(succeeded());
    const before = await payments.get(ORDER);
    const eventCount = payments.outbox.length;

    expect(await apply(paymentFailed())).toBe('ignored');

    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.outbox).toHaveLength(eventCount);
    expect(saga.calls.map((call) => call.kind)).toEqual(['succeed']);
  });

  it('remembers an ignored event so that it is never applied later either', async () => {
    const { payments, apply } = await initiated();
    await apply(succeeded());

    expect(await apply(paymentFailed('evt_late'))).toBe('ignored');

    expect(payments.stripeEvents.has('evt_late')).toBe(true);
    expect(await apply(paymentFailed('evt_late'))).toBe('duplicate');
  });

  it('finds the payment by its PaymentIntent id even when the metadata names no order', async () => {
    const { payments, apply } = await initiated();
    const event = stripeEvent('evt_1', 'payment_intent.succeeded', {
      id: `pi_${ORDER}`,
      status: 'succeeded',
      metadata: {},
    });

    expect(await apply(event)).toBe('applied');
    expect(await payments.get(ORDER)).toMatchObject({ status: 'SUCCEEDED' });
  });

  it('falls back to metadata.orderId when the PaymentIntent id is not on record, and records that id', async () => {
    const { payments, saga, apply } = setup();
    payments.put({ status: 'CREATING' }); // intent created, its id never stored

    expect(await apply(succeeded('evt_1', 'pi_unrecorded'))).toBe('applied');

    expect(await payments.get(ORDER)).toMatchObject({
      status: 'SUCCEEDED',
      paymentIntentId: 'pi_unrecorded',
    });
    expect(payments.eventsOf('payment.succeeded')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ paymentIntentId: 'pi_unrecorded' }) }),
    ]);
    expect(saga.calls).toEqual([expect.objectContaining({ kind: 'succeed', token: 'token-1' })]);
  });

  it('answers unknown-payment for an intent of no known order, and changes nothing', async () => {
    const { payments, saga, apply } = await initiated();
    const before = await payments.get(ORDER);
    const event = stripeEvent('evt_1', 'payment_intent.succeeded', {
      id: 'pi_elsewhere',
      status: 'succeeded',
      metadata: { orderId: 'order-unknown' },
    });

    expect(await apply(event)).toBe('unknown-payment');

    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.eventsOf('payment.succeeded')).toEqual([]);
    expect(saga.calls).toEqual([]);
  });

  it('answers unhandled-type for other event types, and changes nothing', async () => {
    const { payments, saga, apply } = await initiated();
    const before = await payments.get(ORDER);
    const eventCount = payments.outbox.length;
    const event = {
      id: 'evt_refund',
      object: 'event',
      type: 'charge.refunded',
      data: { object: { id: 'ch_1', object: 'charge', payment_intent: `pi_${ORDER}` } },
    } as unknown as Stripe.Event;

    expect(await apply(event)).toBe('unhandled-type');

    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.outbox).toHaveLength(eventCount);
    expect(payments.stripeEvents.size).toBe(0);
    expect(saga.calls).toEqual([]);
  });

  it('refunds a success for another intent of the order (found by metadata) and leaves the payment as it is', async () => {
    const { payments, gateway, saga, apply } = await initiated();
    const before = await payments.get(ORDER);
    const eventCount = payments.outbox.length;

    const warn = vi.spyOn(logger, 'warn');
    onTestFinished(() => warn.mockRestore());

    expect(await apply(succeeded('evt_other', 'pi_dashboard'))).toBe('foreign-refunded');

    expect(gateway.calls).toEqual(['refund:pi_dashboard']);
    // The line the stack's StrayChargesRefunded metric filter counts.
    expect(warn).toHaveBeenCalledWith(
      STRAY_CHARGE_REFUNDED,
      expect.objectContaining({ orderId: ORDER, paymentIntentId: 'pi_dashboard' }),
    );
    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.outbox).toHaveLength(eventCount);
    expect(payments.stripeEvents.has('evt_other')).toBe(true);
    expect(saga.calls).toEqual([]);
    // Redelivered: recognised by its id. The refund's idempotency key is the intent's own.
    expect(await apply(succeeded('evt_other', 'pi_dashboard'))).toBe('duplicate');
    // The payment's own intent still settles it.
    expect(await apply(succeeded())).toBe('applied');
    expect(await payments.get(ORDER)).toMatchObject({ status: 'SUCCEEDED', paymentIntentId: `pi_${ORDER}` });
  });

  it.each([
    ['payment_failed', paymentFailed],
    ['canceled', canceled],
  ])('ignores %s for another intent of the order: nothing refunded, nothing changed', async (_, make) => {
    const { payments, gateway, saga, apply } = await initiated();
    const before = await payments.get(ORDER);

    expect(await apply(make('evt_other', 'pi_dashboard'))).toBe('foreign-ignored');

    expect(gateway.calls).toEqual([]);
    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.stripeEvents.has('evt_other')).toBe(true);
    expect(saga.calls).toEqual([]);
  });

  it.each(['SUCCEEDED', 'CANCELLED', 'REFUNDED'] as const)(
    'refunds a success for another intent when the payment is %s with its own intent, changing nothing',
    async (status) => {
      const { payments, gateway, apply } = setup();
      payments.put({
        status,
        paymentIntentId: 'pi_recorded',
        refundId: status === 'REFUNDED' ? 're_0' : undefined,
      });
      const before = await payments.get(ORDER);

      expect(await apply(succeeded('evt_other', 'pi_dashboard'))).toBe('foreign-refunded');

      expect(gateway.calls).toEqual(['refund:pi_dashboard']);
      expect(await payments.get(ORDER)).toEqual(before);
      expect(payments.outbox).toEqual([]);
    },
  );

  it.each([
    ['amount', { amount: 2400 }],
    ['currency', { currency: 'eur' }],
  ])('treats a success whose %s differs from the payment like a foreign intent', async (_, differs) => {
    const { payments, gateway, saga, apply } = await initiated();
    const before = await payments.get(ORDER);
    const event = stripeEvent('evt_odd', 'payment_intent.succeeded', {
      id: `pi_${ORDER}`,
      status: 'succeeded',
      ...differs,
    });

    expect(await apply(event)).toBe('foreign-refunded');

    expect(gateway.calls).toEqual([`refund:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.eventsOf('payment.succeeded')).toEqual([]);
    expect(saga.calls).toEqual([]);
  });

  it('does not take a success whose event carries no amount or currency: it cannot be checked', async () => {
    const { payments, apply } = await initiated();
    const before = await payments.get(ORDER);
    const event = stripeEvent('evt_bare', 'payment_intent.succeeded', {
      id: `pi_${ORDER}`,
      status: 'succeeded',
    });
    delete (event.data.object as { amount?: number }).amount;

    expect(await apply(event)).toBe('foreign-refunded');
    expect(await payments.get(ORDER)).toEqual(before);
  });

  it('compares the currency without regard to case', async () => {
    const { payments, apply } = await initiated();
    const event = stripeEvent('evt_1', 'payment_intent.succeeded', {
      id: `pi_${ORDER}`,
      status: 'succeeded',
      currency: 'USD',
    });
    expect(await apply(event)).toBe('applied');
    expect(await payments.get(ORDER)).toMatchObject({ status: 'SUCCEEDED' });
  });

  it('a success with another amount for a payment with no intent recorded is refunded, not adopted', async () => {
    const { payments, gateway, apply } = setup();
    payments.put({ status: 'CREATING' });
    const event = stripeEvent('evt_1', 'payment_intent.succeeded', {
      id: 'pi_unrecorded',
      status: 'succeeded',
      amount: 99,
    });

    expect(await apply(event)).toBe('foreign-refunded');

    expect(gateway.calls).toEqual(['refund:pi_unrecorded']);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'CREATING' });
    expect((await payments.get(ORDER))?.paymentIntentId).toBeUndefined();
  });

  it('does not adopt an intent by metadata when the payment step recorded its own meanwhile', async () => {
    const { payments, gateway, apply } = setup();
    payments.put({ status: 'CREATING' });
    const read = payments.get.bind(payments);
    let raced = false;
    payments.get = async (orderId: string) => {
      const snapshot = await read(orderId);
      if (!raced) {
        raced = true; // the webhook saw no intent; now the payment step records its own
        await payments.transition(ORDER, 'INITIATED', { paymentIntentId: 'pi_own' }, undefined, NOW);
      }
      return snapshot;
    };

    expect(await apply(succeeded('evt_1', 'pi_dashboard'))).toBe('foreign-refunded');

    expect(gateway.calls).toEqual(['refund:pi_dashboard']);
    expect(await read(ORDER)).toMatchObject({ status: 'INITIATED', paymentIntentId: 'pi_own' });
    expect(payments.stripeEvents.has('evt_1')).toBe(true);
  });

  it('treats a closed token (the step timed out) as no error and marks it notified', async () => {
    const { payments, saga, apply } = await initiated();
    saga.answer = 'closed';

    expect(await apply(succeeded())).toBe('applied');

    expect(await payments.get(ORDER)).toMatchObject({ status: 'SUCCEEDED', notifiedToken: 'token-1' });
    expect(saga.calls).toHaveLength(1);
    expect(await apply(succeeded('evt_again'))).toBe('ignored');
    expect(saga.calls).toHaveLength(1);
  });
});

describe('a decline the customer may retry (the order has no payment method: they confirm in the browser)', () => {
  const declinedWith = (
    id: string,
    decline_code: string,
    message: string,
    created = NOW.getTime() / 1000,
  ) => {
    const event = stripeEvent(id, 'payment_intent.payment_failed', {
      id: `pi_${ORDER}`,
      status: 'requires_payment_method',
      last_payment_error: {
        type: 'card_error',
        code: 'card_declined',
        decline_code,
        message,
      } as Stripe.PaymentIntent.LastPaymentError,
    });
    return { ...event, created } as Stripe.Event;
  };

  it('records the decline as lastError and keeps the payment waiting: no payment.failed, the saga not told', async () => {
    const { payments, saga, deps, apply } = await initiated(null);

    expect(await apply(paymentFailed())).toBe('applied');

    const payment = await payments.get(ORDER);
    expect(payment).toMatchObject({
      status: 'INITIATED',
      confirmedBy: 'browser',
      stripeStatus: 'requires_payment_method',
      lastError: {
        code: 'card_declined',
        declineCode: 'insufficient_funds',
        message: 'Your card has insufficient funds.',
      },
    });
    expect(payment?.failureCode).toBeUndefined();
    expect(payments.events().map((event) => event.type)).toEqual(['payment.initiated']);
    expect(saga.calls).toEqual([]);
    expect(await checkoutFor(deps)(ORDER)).toEqual({
      clientSecret: `pi_${ORDER}_secret_test`,
      lastError: {
        code: 'card_declined',
        declineCode: 'insufficient_funds',
        message: 'Your card has insufficient funds.',
      },
    });
  });

  it('a doubled decline webhook changes nothing', async () => {
    const { payments, saga, apply } = await initiated(null);
    await apply(paymentFailed('evt_declined'));
    const before = await payments.get(ORDER);

    expect(await apply(paymentFailed('evt_declined'))).toBe('duplicate');

    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.outbox).toHaveLength(1);
    expect(saga.calls).toEqual([]);
  });

  it('then a success with another card completes the payment and tells the saga once, with nothing refunded', async () => {
    const { payments, gateway, saga, deps, apply } = await initiated(null);
    await apply(paymentFailed());

    expect(await apply(succeeded())).toBe('applied');

    expect(await payments.get(ORDER)).toMatchObject({ status: 'SUCCEEDED', notifiedToken: 'token-1' });
    expect(payments.events().map((event) => event.type)).toEqual(['payment.initiated', 'payment.succeeded']);
    expect(saga.calls).toEqual([expect.objectContaining({ kind: 'succeed', token: 'token-1' })]);
    expect(gateway.calls).toEqual([]);
    expect(await checkoutFor(deps)(ORDER)).toEqual({ clientSecret: null, lastError: null });
  });

  it("a later attempt's decline replaces lastError; an earlier attempt's, delivered late, does not", async () => {
    const { payments, apply } = await initiated(null);
    const first = declinedWith('evt_first', 'generic_decline', 'Your card was declined.', 1_700_000_000);
    const second = declinedWith(
      'evt_second',
      'insufficient_funds',
      'Your card has insufficient funds.',
      1_700_000_060,
    );

    expect(await apply(first)).toBe('applied');
    expect(await apply(second)).toBe('applied');
    expect((await payments.get(ORDER))?.lastError).toMatchObject({ declineCode: 'insufficient_funds' });

    const { apply: applyLate, payments: latePayments } = await initiated(null);
    expect(await applyLate(second)).toBe('applied');
    expect(await applyLate(first)).toBe('ignored');
    expect((await latePayments.get(ORDER))?.lastError).toMatchObject({ declineCode: 'insufficient_funds' });
    // Remembered: a redelivery of the late one is a duplicate.
    expect(await applyLate(first)).toBe('duplicate');
  });

  it('a decline delivered after the success changes nothing', async () => {
    const { payments, saga, apply } = await initiated(null);
    await apply(succeeded());
    const before = await payments.get(ORDER);

    expect(await apply(paymentFailed())).toBe('ignored');

    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.events().map((event) => event.type)).toEqual(['payment.initiated', 'payment.succeeded']);
    expect(saga.calls.map((call) => call.kind)).toEqual(['succeed']);
  });

  it("a decline before the payment step ran can only be the browser's: recorded, and the step then waits on", async () => {
    const { payments, saga, create, request, apply } = setup();
    await create({ orderId: ORDER, customerId: 'cust-1', amount: 2500, currency: 'usd' });

    expect(await apply(paymentFailed())).toBe('applied');
    expect(await payments.get(ORDER)).toMatchObject({ status: 'INITIATED', lastError: expect.any(Object) });

    await request(command({ paymentMethodId: null }));
    expect(saga.calls).toEqual([]);
    expect(await apply(succeeded())).toBe('applied');
    expect(saga.calls).toEqual([expect.objectContaining({ kind: 'succeed', token: 'token-1' })]);
  });

  it('the payment timeout while the intent waits for another card cancels it: PAYMENT_TIMEOUT', async () => {
    const { payments, gateway, saga, resolve, apply } = await initiated(null);
    await apply(paymentFailed());

    await expect(resolve({ orderId: ORDER })).rejects.toMatchObject({ name: SagaOutcome.PaymentTimeout });

    expect(gateway.calls).toEqual([`cancelIntent:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'PAYMENT_TIMEOUT',
    });
    expect(payments.events().map((event) => event.type)).toEqual(['payment.initiated', 'payment.cancelled']);
    expect(saga.calls).toEqual([]);
  });

  it('an order confirmed with its payment method still fails at once on a decline', async () => {
    const { payments, saga, deps, apply } = await initiated('pm_card_authenticationRequired');

    expect(await apply(paymentFailed())).toBe('applied');

    expect(await payments.get(ORDER)).toMatchObject({ status: 'FAILED', confirmedBy: 'server' });
    expect(payments.eventsOf('payment.failed')).toHaveLength(1);
    expect(saga.calls).toEqual([
      expect.objectContaining({ kind: 'fail', token: 'token-1', error: SagaOutcome.PaymentDeclined }),
    ]);
    expect(await checkoutFor(deps)(ORDER)).toEqual({ clientSecret: null, lastError: null });
  });

  it('a payment written before confirmedBy was recorded keeps the decline final, as it was then', async () => {
    const { payments, saga, apply } = setup();
    payments.put({ status: 'INITIATED', paymentIntentId: `pi_${ORDER}`, clientSecret: 'secret' });

    expect(await apply(paymentFailed())).toBe('applied');

    expect(await payments.get(ORDER)).toMatchObject({ status: 'FAILED', failureCode: 'insufficient_funds' });
    expect(saga.calls).toEqual([
      expect.objectContaining({ kind: 'fail', error: SagaOutcome.PaymentDeclined }),
    ]);
  });
});

describe('notifySaga', () => {
  const settled = (overrides: Partial<Payment> = {}): Payment => ({
    orderId: ORDER,
    amount: 2500,
    currency: 'usd',
    status: 'SUCCEEDED',
    paymentIntentId: `pi_${ORDER}`,
    taskToken: 'token-1',
    createdAt: NOW.toISOString(),
    updatedAt: NOW.toISOString(),
    ...overrides,
  });

  it('tells nothing while the payment is open', async () => {
    const { payments, saga, deps } = setup();
    payments.put({ status: 'INITIATED' });
    await notifySaga(deps, settled({ status: 'INITIATED' }));
    expect(saga.calls).toEqual([]);
    expect(await payments.get(ORDER)).not.toHaveProperty('notifiedToken');
  });

  it('tells nothing without a task token, or when that token was already told', async () => {
    const { saga, deps } = setup();
    await notifySaga(deps, settled({ taskToken: undefined }));
    await notifySaga(deps, settled({ notifiedToken: 'token-1' }));
    expect(saga.calls).toEqual([]);
  });

  it.each([
    ['REFUNDED', {}, SagaOutcome.PaymentCanceled],
    ['REFUNDED', { failureCode: 'card_declined' }, SagaOutcome.PaymentDeclined],
    ['CANCELLED', {}, SagaOutcome.PaymentCanceled],
    ['CANCELLED', { cancellationReason: 'CUSTOMER_CANCELLED' }, SagaOutcome.CustomerCancelled],
    ['CANCELLED', { cancellationReason: 'PAYMENT_TIMEOUT' }, SagaOutcome.PaymentTimeout],
    ['FAILED', { failureCode: 'card_declined' }, SagaOutcome.PaymentDeclined],
  ] as const)(
    'fails the step for a %s payment (%o) with %s: only money kept completes an order',
    async (status, extra, error) => {
      const { payments, saga, deps } = setup();
      payments.put({ status, ...extra });
      await notifySaga(deps, settled({ status, ...extra }));
      expect(saga.calls).toEqual([expect.objectContaining({ kind: 'fail', token: 'token-1', error })]);
    },
  );

  it('tells a new token even when an earlier one was told', async () => {
    const { payments, saga, deps } = setup();
    payments.put({ status: 'SUCCEEDED', taskToken: 'token-2', notifiedToken: 'token-1' });
    await notifySaga(deps, settled({ taskToken: 'token-2', notifiedToken: 'token-1' }));
    expect(saga.calls).toEqual([expect.objectContaining({ kind: 'succeed', token: 'token-2' })]);
    expect(await payments.get(ORDER)).toMatchObject({ notifiedToken: 'token-2' });
  });

  it('does not mark a token notified when the payment has moved on to another token meanwhile', async () => {
    const { payments, deps } = setup();
    payments.put({ status: 'SUCCEEDED', taskToken: 'token-2' });
    await notifySaga(deps, settled({ taskToken: 'token-1' }));
    expect(await payments.get(ORDER)).not.toHaveProperty('notifiedToken');
  });
});

describe('cancelPayment', () => {
  it('answers NONE when the order never reached payment', async () => {
    const { gateway, cancel } = setup();
    expect(await cancel({ orderId: ORDER })).toEqual({ status: 'NONE' });
    expect(gateway.calls).toEqual([]);
  });

  it('cancels an open intent: CANCELLED with payment.cancelled carrying the saga failure as reason', async () => {
    const { payments, gateway, cancel } = await initiated();

    const result = await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_FAILED', Cause: 'declined' } });

    expect(result).toEqual({ status: 'CANCELLED' });
    expect(gateway.calls).toEqual([`cancelIntent:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'CANCELLED', stripeStatus: 'canceled' });
    expect(payments.eventsOf('payment.cancelled')).toEqual([
      expect.objectContaining({
        subject: ORDER,
        data: {
          orderId: ORDER,
          paymentIntentId: `pi_${ORDER}`,
          amount: 2500,
          currency: 'usd',
          reason: 'PAYMENT_FAILED',
        },
      }),
    ]);
  });

  it.each([
    [{ Error: 'PAYMENT_TIMEOUT' }, 'PAYMENT_TIMEOUT'],
    [{ Error: 'CUSTOMER_CANCELLED' }, 'CUSTOMER_CANCELLED'],
    [{ Error: 'ReservationExpiredError' }, 'RESERVATION_EXPIRED'],
    [{ Error: 'PaymentMethodRejectedError' }, 'PAYMENT_FAILED'],
    [{ Error: 'States.Timeout' }, 'PROCESSING_ERROR'],
    [undefined, 'COMPENSATION'],
  ])('maps the saga failure %o to the reason %s', async (failure, reason) => {
    const { payments, cancel } = await initiated();
    await cancel({ orderId: ORDER, failure });
    expect(payments.eventsOf('payment.cancelled')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason }) }),
    ]);
  });

  it('cancels a payment that already failed, calling Stripe to cancel its intent', async () => {
    const { payments, gateway, cancel, apply } = await initiated();
    await apply(paymentFailed());

    expect(await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_FAILED' } })).toEqual({
      status: 'CANCELLED',
    });

    expect(gateway.calls).toEqual([`cancelIntent:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({
      status: 'CANCELLED',
      failureCode: 'insufficient_funds',
    });
  });

  it('refunds a payment that succeeded: REFUNDED with payment.refunded carrying the refund id', async () => {
    const { payments, gateway, cancel, apply } = await initiated();
    await apply(succeeded());

    const result = await cancel({ orderId: ORDER, failure: { Error: 'States.TaskFailed' } });

    expect(result).toEqual({ status: 'REFUNDED' });
    // A failure that is no outcome ends the order PROCESSING_ERROR, and the refund says so.
    expect(gateway.calls).toEqual([`refund:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'REFUNDED', refundId: 're_1' });
    expect(payments.eventsOf('payment.refunded')).toEqual([
      expect.objectContaining({
        subject: ORDER,
        data: {
          orderId: ORDER,
          paymentIntentId: `pi_${ORDER}`,
          amount: 2500,
          currency: 'usd',
          reason: 'PROCESSING_ERROR',
          refundId: 're_1',
        },
      }),
    ]);
  });

  it('records the success and then refunds an intent that turns out paid when it is cancelled', async () => {
    const { payments, gateway, cancel } = await initiated();
    gateway.cancelAnswer = 'succeeded';

    const result = await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_TIMEOUT' } });

    expect(result).toEqual({ status: 'REFUNDED' });
    expect(gateway.calls).toEqual([`cancelIntent:pi_${ORDER}`, `refund:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'REFUNDED', refundId: 're_1' });
    expect(payments.events().map((event) => event.type)).toEqual([
      'payment.initiated',
      'payment.succeeded',
      'payment.refunded',
    ]);
    expect(payments.eventsOf('payment.refunded')).toEqual([
      expect.objectContaining({
        data: expect.objectContaining({ reason: 'PAYMENT_TIMEOUT', refundId: 're_1' }),
      }),
    ]);
  });

  it('refunds a failed payment that turns out paid (another card after the decline), once', async () => {
    const { payments, gateway, cancel, apply } = await initiated();
    await apply(paymentFailed());
    gateway.cancelAnswer = 'succeeded';

    expect(await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_FAILED' } })).toEqual({
      status: 'REFUNDED',
    });
    expect(await payments.get(ORDER)).toMatchObject({ status: 'REFUNDED', refundId: 're_1' });
    expect(payments.eventsOf('payment.refunded')).toHaveLength(1);

    expect(await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_FAILED' } })).toEqual({
      status: 'REFUNDED',
    });
    expect(gateway.refunds).toBe(1);
  });

  it('a late webhook for the refunded payment changes nothing', async () => {
    const { payments, cancel, apply } = await initiated();
    await apply(succeeded('evt_1'));
    await cancel({ orderId: ORDER });
    const before = await payments.get(ORDER);
    const eventCount = payments.outbox.length;

    expect(await apply(succeeded('evt_2'))).toBe('ignored');
    expect(await apply(canceled('evt_3'))).toBe('ignored');

    expect(await payments.get(ORDER)).toEqual(before);
    expect(payments.outbox).toHaveLength(eventCount);
  });

  it.each([
    ['an open intent', 'CANCELLED', async (_: Context) => {}],
    ['a paid intent', 'REFUNDED', async ({ apply }: Context) => void (await apply(succeeded()))],
    [
      'an intent found paid when cancelling',
      'REFUNDED',
      async ({ gateway }: Context) => void (gateway.cancelAnswer = 'succeeded'),
    ],
  ])(
    'repeating the compensation of %s changes nothing and calls Stripe no more',
    async (_, status, arrange) => {
      const context = await initiated();
      const { payments, gateway, cancel } = context;
      await arrange(context);
      await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_TIMEOUT' } });
      const before = await payments.get(ORDER);
      const eventCount = payments.outbox.length;
      const stripeCalls = gateway.calls.length;

      expect(await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_TIMEOUT' } })).toEqual({ status });

      expect(before).toMatchObject({ status });
      expect(gateway.calls).toHaveLength(stripeCalls);
      expect(await payments.get(ORDER)).toEqual(before);
      expect(payments.outbox).toHaveLength(eventCount);
    },
  );

  it('cancels at Stripe an intent the payment step recorded while compensation was deciding', async () => {
    const { payments, gateway, cancel, request } = setup();
    await payments.begin({ orderId: ORDER, amount: 2500, currency: 'usd', taskToken: 'token-1' }, NOW);
    const read = payments.get.bind(payments);
    let raced = false;
    payments.get = async (orderId: string) => {
      const snapshot = await read(orderId);
      if (!raced) {
        raced = true; // compensation saw CREATING; now the payment step records its intent
        await request(command({ paymentMethodId: null }));
      }
      return snapshot;
    };

    expect(await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_TIMEOUT' } })).toEqual({
      status: 'CANCELLED',
    });
    expect(gateway.calls).toEqual(['createIntent', `cancelIntent:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'CANCELLED', paymentIntentId: `pi_${ORDER}` });
  });

  it("reports the order's cancellation reason on the payment event when the saga passes one", async () => {
    const { payments, cancel } = await initiated();
    await cancel({
      orderId: ORDER,
      failure: { Error: 'PAYMENT_TIMEOUT' },
      cancellationReason: 'CUSTOMER_CANCELLED',
    });
    expect(payments.eventsOf('payment.cancelled')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'CUSTOMER_CANCELLED' }) }),
    ]);
  });

  it("keeps the order's reason when Stripe's payment_intent.canceled is applied before compensation's own write", async () => {
    const { payments, gateway, cancel, apply } = await initiated();
    const cancelAtStripe = gateway.cancelIntent.bind(gateway);
    gateway.cancelIntent = async (orderId: string, paymentIntentId: string) => {
      const answer = await cancelAtStripe(orderId, paymentIntentId);
      // Stripe's webhook lands before cancelIntent's answer is back.
      expect(await apply(canceled('evt_canceled'))).toBe('applied');
      return answer;
    };

    expect(await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_TIMEOUT' } })).toEqual({
      status: 'CANCELLED',
    });

    expect(await payments.get(ORDER)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'PAYMENT_TIMEOUT',
    });
    expect(payments.eventsOf('payment.cancelled')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'PAYMENT_TIMEOUT' }) }),
    ]);
  });

  it("a payment_intent.canceled with no compensation behind it reports Stripe's reason", async () => {
    const { payments, apply } = await initiated();
    expect(await apply(canceled())).toBe('applied');
    expect(await payments.get(ORDER)).toMatchObject({ cancellationReason: 'abandoned' });
    expect(payments.eventsOf('payment.cancelled')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'abandoned' }) }),
    ]);
  });

  it('cancels a payment with no intent on record without calling Stripe and without an event', async () => {
    const { payments, gateway, cancel } = setup();
    payments.put({ status: 'CREATING' });

    expect(await cancel({ orderId: ORDER, failure: { Error: 'PAYMENT_TIMEOUT' } })).toEqual({
      status: 'CANCELLED',
    });

    expect(gateway.calls).toEqual([]);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'CANCELLED' });
    expect(payments.outbox).toEqual([]);
  });
});

describe('resolvePayment (the payment wait timed out)', () => {
  it('takes a payment whose success was recorded late (the webhook after the timeout) as paid', async () => {
    const { gateway, resolve, apply, saga } = await initiated();
    saga.answer = 'closed';
    await apply(succeeded());
    gateway.calls.length = 0;

    expect(await resolve({ orderId: ORDER })).toEqual({
      paymentIntentId: `pi_${ORDER}`,
      status: 'succeeded',
      amount: 2500,
      currency: 'usd',
    });
    expect(gateway.calls).toEqual([]);
  });

  it('asks Stripe: an intent that succeeded but whose webhook never came is paid, never refunded', async () => {
    const { payments, gateway, resolve } = await initiated();
    gateway.cancelAnswer = 'succeeded';

    expect(await resolve({ orderId: ORDER })).toMatchObject({ status: 'succeeded' });
    expect(gateway.calls).toEqual([`cancelIntent:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({ status: 'SUCCEEDED' });
    expect(payments.eventsOf('payment.succeeded')).toHaveLength(1);
    expect(payments.eventsOf('payment.refunded')).toHaveLength(0);
  });

  it('cancels an intent that can still be canceled and ends the saga PAYMENT_TIMEOUT', async () => {
    const { payments, gateway, resolve } = await initiated();

    await expect(resolve({ orderId: ORDER })).rejects.toMatchObject({ name: SagaOutcome.PaymentTimeout });
    expect(gateway.calls).toEqual([`cancelIntent:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'PAYMENT_TIMEOUT',
    });
    expect(payments.eventsOf('payment.cancelled')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'PAYMENT_TIMEOUT' }) }),
    ]);
  });

  it('answers a decline that was recorded before the timeout with that decline', async () => {
    const { resolve, apply } = await initiated();
    await apply(paymentFailed());

    await expect(resolve({ orderId: ORDER })).rejects.toMatchObject({ name: SagaOutcome.PaymentDeclined });
  });

  it('a customer cancel that got there first wins over the timeout', async () => {
    const { resolve, customerCancel } = await initiated();
    expect(await customerCancel(ORDER)).toBe('canceled');

    await expect(resolve({ orderId: ORDER })).rejects.toMatchObject({ name: SagaOutcome.CustomerCancelled });
  });

  it('is repeatable: a second run after a lost response answers the same and calls Stripe no more', async () => {
    const { gateway, resolve } = await initiated();
    await resolve({ orderId: ORDER }).catch(() => {});
    gateway.calls.length = 0;

    await expect(resolve({ orderId: ORDER })).rejects.toMatchObject({ name: SagaOutcome.PaymentTimeout });
    expect(gateway.calls).toEqual([]);
  });
});

describe('cancelForCustomer (POST /orders/{id}/cancel during the payment wait)', () => {
  it('cancels the intent at Stripe, closes the payment CUSTOMER_CANCELLED and tells the waiting step at once', async () => {
    const { payments, gateway, saga, customerCancel } = await initiated();

    expect(await customerCancel(ORDER)).toBe('canceled');

    expect(gateway.calls).toEqual([`cancelIntent:pi_${ORDER}`]);
    expect(await payments.get(ORDER)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'CUSTOMER_CANCELLED',
    });
    expect(payments.eventsOf('payment.cancelled')).toEqual([
      expect.objectContaining({ data: expect.objectContaining({ reason: 'CUSTOMER_CANCELLED' }) }),
    ]);
    expect(saga.calls).toEqual([
      expect.objectContaining({ kind: 'fail', token: 'token-1', error: SagaOutcome.CustomerCancelled }),
    ]);
  });

  it('racing a success Stripe already took: the payment wins, is recorded, and the saga completes', async () => {
    const { payments, gateway, saga, customerCancel } = await initiated();
    gateway.cancelAnswer = 'succeeded';

    expect(await customerCancel(ORDER)).toBe('paid');

    expect(await payments.get(ORDER)).toMatchObject({ status: 'SUCCEEDED' });
    expect(payments.eventsOf('payment.cancelled')).toHaveLength(0);
    expect(saga.calls.map((call) => call.kind)).toEqual(['succeed']);
  });

  it('answers paid for a payment already succeeded, and none before any payment exists', async () => {
    const { payments, gateway, customerCancel } = setup();
    expect(await customerCancel(ORDER)).toBe('none');
    payments.put({ status: 'SUCCEEDED', paymentIntentId: `pi_${ORDER}` });
    expect(await customerCancel(ORDER)).toBe('paid');
    expect(gateway.calls).toEqual([]);
  });

  it('closes a payment whose intent is not recorded yet without Stripe; the payment step then creates none', async () => {
    const { payments, gateway, customerCancel, create } = setup();
    payments.put({ status: 'CREATING' });

    expect(await customerCancel(ORDER)).toBe('canceled');
    expect(await payments.get(ORDER)).toMatchObject({ status: 'CANCELLED' });
    expect(await create({ orderId: ORDER, amount: 2500, currency: 'usd' })).toEqual({
      paymentIntentId: null,
      status: 'canceled',
    });
    expect(gateway.calls).toEqual([]);
  });

  it('is idempotent: a repeat changes nothing and calls Stripe no more', async () => {
    const { payments, gateway, customerCancel } = await initiated();
    await customerCancel(ORDER);
    gateway.calls.length = 0;
    const events = payments.events().length;

    expect(await customerCancel(ORDER)).toBe('canceled');
    expect(gateway.calls).toEqual([]);
    expect(payments.events()).toHaveLength(events);
  });
});

describe('checkoutFor', () => {
  it('hands out the secret while the intent can be confirmed, and never once the payment is settled', async () => {
    const { deps, apply } = await initiated(null);
    expect(await checkoutFor(deps)(ORDER)).toEqual({
      clientSecret: `pi_${ORDER}_secret_test`,
      lastError: null,
    });
    await apply(succeeded());
    expect(await checkoutFor(deps)(ORDER)).toEqual({ clientSecret: null, lastError: null });
    expect(await checkoutFor(deps)('order-unknown')).toEqual({ clientSecret: null, lastError: null });
  });
});
