import type Stripe from 'stripe';
import { z } from 'zod';
import { OrderIdSchema } from '../../events/common.ts';
import { createEvent, type NewEvent, type EventData } from '../../events/envelope.ts';
import { logger } from '../../shared/logger.ts';
import { Metric } from '../../shared/metric-names.ts';
import { addCount, addDuration } from '../../shared/metrics.ts';
import { cancellationReasonFor, type PaymentFailureCause, type PaymentLastError } from '../../shared/saga.ts';
import {
  closedOutcome,
  declineIsRetryable,
  InvalidStripeEventError,
  PAYMENT_SOURCE,
  PaymentAmountRefusedError,
  PaymentClosedError,
  PaymentStateError,
  REFUNDABLE_WHEN_PAID_LATE,
  REFUND_FAILED,
  SETTLED,
  STRAY_CHARGE_REFUNDED,
  type CancelPaymentCommand,
  type CheckoutView,
  type CreatePaymentCommand,
  type PaidView,
  type Payment,
  type PaymentIntentView,
  type PaymentStatus,
  type RequestPaymentCommand,
  type ResolvePaymentCommand,
} from './payment.ts';
import type { PaymentRepository, TransitionResult } from './payment-repository.ts';
import type { SagaNotifier } from './saga-notifier.ts';
import { PaymentProviderUnavailableError, type PaymentGateway } from './stripe-gateway.ts';
import { STRIPE_MAXIMUM_CHARGE, stripeMinimumCharge } from './stripe-limits.ts';

export interface PaymentDeps {
  payments: PaymentRepository;
  gateway: PaymentGateway;
  saga: SagaNotifier;
  now: () => Date;
}

type PaymentSubject =
  'payment.initiated' | 'payment.succeeded' | 'payment.failed' | 'payment.cancelled' | 'payment.refunded';

/** A payment event: the fields every payment event carries, plus the subject's own. */
function paymentEvent<S extends PaymentSubject>(
  type: S,
  payment: Payment,
  paymentIntentId: string,
  extra: Omit<EventData<S>, 'orderId' | 'paymentIntentId' | 'amount' | 'currency'>,
  now: Date,
): NewEvent {
  const data = {
    orderId: payment.orderId,
    paymentIntentId,
    amount: payment.amount,
    currency: payment.currency,
    ...extra,
  };
  return createEvent(type, {
    source: PAYMENT_SOURCE,
    subject: payment.orderId,
    time: now,
    data: data as EventData<S>,
  });
}

/**
 * Tells the waiting saga step the settled outcome, once per task token. A closed token (the step
 * timed out or the saga moved on) is expected and not an error.
 */
export async function notifySaga(deps: PaymentDeps, payment: Payment): Promise<void> {
  const token = payment.taskToken;
  if (!token || payment.notifiedToken === token || !SETTLED.includes(payment.status)) return;
  // Only a payment whose money is kept completes the order; a refunded one cancels it too.
  const result =
    payment.status === 'SUCCEEDED'
      ? await deps.saga.succeed(token, paidView(payment))
      : await deps.saga.fail(token, closedOutcome(payment), {
          paymentIntentId: payment.paymentIntentId,
          failureCode: payment.failureCode,
          message: payment.failureMessage,
          cancellationReason: payment.cancellationReason,
        } satisfies PaymentFailureCause);
  if (result === 'closed')
    logger.info('saga step no longer waiting for payment', { orderId: payment.orderId });
  await deps.payments.markNotified(payment.orderId, token);
}

function paidView(payment: Payment): PaidView {
  return {
    paymentIntentId: payment.paymentIntentId!,
    status: 'succeeded',
    amount: payment.amount,
    currency: payment.currency,
  };
}

/** The payment's PaymentIntent, as recorded; `closed` when compensation closed the payment first. */
type EnsuredIntent = { paymentIntentId: string; stripeStatus: string; clientSecret?: string } | 'closed';

/**
 * Gives the payment its PaymentIntent: created unconfirmed (one per order, by its Stripe idempotency
 * key) and its id recorded before anyone can confirm it, so compensation can always find what to
 * cancel or refund. An intent already on record is returned as it is.
 */
async function ensureIntent(deps: PaymentDeps, payment: Payment): Promise<EnsuredIntent> {
  const { orderId } = payment;
  if (payment.paymentIntentId) {
    return {
      paymentIntentId: payment.paymentIntentId,
      stripeStatus: payment.stripeStatus ?? 'requires_payment_method',
      ...(payment.clientSecret ? { clientSecret: payment.clientSecret } : {}),
    };
  }
  if (SETTLED.includes(payment.status)) return 'closed';
  const intent = await deps.gateway
    .createIntent({
      orderId,
      amount: payment.amount,
      currency: payment.currency,
      attempt: payment.intentAttempt ?? 0,
    })
    .catch(async (error: unknown) => {
      // Stripe now answers this key only with its 5xx: the next attempt creates under the next key.
      // An intent the 5xx may have created is never confirmed (nobody has its secret): it holds no money.
      if (error instanceof PaymentProviderUnavailableError && error.keySpent)
        await deps.payments.nextIntentAttempt(orderId, deps.now());
      throw error;
    });
  const recorded = await deps.payments.transition(
    orderId,
    'INITIATED',
    {
      paymentIntentId: intent.id,
      stripeStatus: intent.status,
      ...(intent.clientSecret ? { clientSecret: intent.clientSecret } : {}),
    },
    paymentEvent('payment.initiated', payment, intent.id, { status: intent.status }, deps.now()),
    deps.now(),
  );
  if (recorded !== 'applied') {
    const current = await deps.payments.get(orderId);
    if (current?.paymentIntentId !== intent.id) {
      // Compensation closed the payment while this intent was being created: never confirm it.
      if (current?.status === 'CANCELLED') {
        await deps.gateway.cancelIntent(orderId, intent.id);
        return 'closed';
      }
      throw new PaymentStateError(orderId, current?.status, 'INITIATED');
    }
  }
  return {
    paymentIntentId: intent.id,
    stripeStatus: intent.status,
    ...(intent.clientSecret ? { clientSecret: intent.clientSecret } : {}),
  };
}

/**
 * The saga step before the wait: creates the payment and its PaymentIntent, and answers the intent
 * the order records (its client secret stays with the payment; checkoutFor reads it).
 * Repeating it creates nothing more and answers the same.
 */
export const createPayment =
  (deps: PaymentDeps) =>
  async (command: CreatePaymentCommand): Promise<PaymentIntentView> => {
    refuseAmountsStripeRefuses(command);
    const payment = await deps.payments.begin(command, deps.now());
    const intent = SETTLED.includes(payment.status) ? 'closed' : await ensureIntent(deps, payment);
    if (intent === 'closed') {
      return { paymentIntentId: payment.paymentIntentId ?? null, status: payment.stripeStatus ?? 'canceled' };
    }
    return { paymentIntentId: intent.paymentIntentId, status: intent.stripeStatus };
  };

/** An amount Stripe would refuse is an outcome, decided before any payment or PaymentIntent exists. */
function refuseAmountsStripeRefuses({ orderId, amount, currency }: CreatePaymentCommand): void {
  const minimum = stripeMinimumCharge(currency);
  if (amount < minimum)
    throw new PaymentAmountRefusedError(orderId, amount, currency, 'amount_too_small', minimum);
  if (amount > STRIPE_MAXIMUM_CHARGE)
    throw new PaymentAmountRefusedError(orderId, amount, currency, 'amount_too_large', STRIPE_MAXIMUM_CHARGE);
}

/**
 * The saga's callback step: stores the task token with the payment, makes sure the PaymentIntent
 * exists (`CreatePayment` made it; an execution started before that step existed has none yet),
 * then confirms it with the order's payment method, if it has one; otherwise the customer confirms
 * it with the client secret. The outcome arrives later through the webhook; one that arrived
 * before the token was stored is reported at once.
 */
export const requestPayment = (deps: PaymentDeps) => async (command: RequestPaymentCommand) => {
  // Recorded before anything is confirmed: it decides whether a decline is final (declineIsRetryable).
  const confirmedBy = command.paymentMethodId ? 'server' : 'browser';
  const payment = await deps.payments.begin({ ...command, confirmedBy }, deps.now());
  if (SETTLED.includes(payment.status)) {
    await notifySaga(deps, payment);
    return { paymentIntentId: payment.paymentIntentId, status: payment.status };
  }
  const intent = await ensureIntent(deps, payment);
  if (intent === 'closed') return { paymentIntentId: payment.paymentIntentId, status: 'canceled' };
  if (!command.paymentMethodId)
    return { paymentIntentId: intent.paymentIntentId, status: intent.stripeStatus };
  const confirmed = await deps.gateway.confirmIntent(
    command.orderId,
    intent.paymentIntentId,
    command.paymentMethodId,
  );
  // An outcome Stripe answered at once is reported at once: the webhook is not the only signal.
  const to =
    confirmed.status === 'succeeded'
      ? 'SUCCEEDED'
      : confirmed.failureCode
        ? 'FAILED'
        : confirmed.status === 'canceled'
          ? 'CANCELLED'
          : undefined;
  if (to) {
    // `canceled` means someone else cancelled the intent meanwhile (the customer, the timeout,
    // compensation). Each notes its reason before it calls Stripe, so only a read made after Stripe's
    // answer is sure to hold it: the payment as begun may predate the note, and settle would write
    // its fallback 'CANCELED' over the customer's reason. Otherwise the payment as begun will do:
    // settle's writes are conditional, and it rereads before telling the saga.
    const current = to === 'CANCELLED' ? ((await deps.payments.get(command.orderId)) ?? payment) : payment;
    await settle(
      deps,
      current,
      {
        id: intent.paymentIntentId,
        object: 'payment_intent',
        status: confirmed.status,
        amount: payment.amount,
        currency: payment.currency,
        last_payment_error: confirmed.failureCode
          ? { decline_code: confirmed.failureCode, message: confirmed.failureMessage ?? null }
          : null,
      },
      to,
    );
  }
  return { paymentIntentId: intent.paymentIntentId, status: confirmed.status };
};

/**
 * Cancels the payment's PaymentIntent at Stripe, where the race with a payment is decided, and
 * records what Stripe answered: canceled, or succeeded after all (a cancel refused because it just
 * succeeded). The waiting step is told unless `notify` is off.
 */
async function cancelAtStripe(
  deps: PaymentDeps,
  payment: Payment,
  paymentIntentId: string,
  stripeReason: 'abandoned' | 'requested_by_customer',
  options: { notify: boolean },
): Promise<void> {
  const { status } = await deps.gateway.cancelIntent(payment.orderId, paymentIntentId);
  const current = (await deps.payments.get(payment.orderId)) ?? payment;
  await settle(
    deps,
    current,
    {
      id: paymentIntentId,
      object: 'payment_intent',
      status,
      amount: payment.amount,
      currency: payment.currency,
      cancellation_reason: stripeReason,
    },
    status === 'succeeded' ? 'SUCCEEDED' : 'CANCELLED',
    undefined,
    options,
  );
}

/**
 * The saga step after the payment wait timed out: Stripe, not the missing webhook, decides. A
 * PaymentIntent that succeeded is paid; one that can still be canceled is canceled (the order then
 * compensates PAYMENT_TIMEOUT); a cancel refused because it just succeeded is paid. A payment that
 * settled meanwhile answers as it settled.
 */
export const resolvePayment =
  (deps: PaymentDeps) =>
  async ({ orderId }: ResolvePaymentCommand): Promise<PaidView> => {
    let payment = await deps.payments.get(orderId);
    if (!payment) throw new PaymentStateError(orderId, undefined, 'SUCCEEDED');
    if (!SETTLED.includes(payment.status)) {
      const now = deps.now();
      // Stripe's payment_intent.canceled may be applied before this step's own write: it reports why.
      await deps.payments.noteCancellationReason(orderId, 'PAYMENT_TIMEOUT', now, { keepExisting: true });
      if (!payment.paymentIntentId) {
        // No intent was ever recorded, so none was confirmed: close it without Stripe (as compensation does).
        await deps.payments.transition(
          orderId,
          'CANCELLED',
          { cancellationReason: 'PAYMENT_TIMEOUT' },
          undefined,
          now,
          undefined,
          ['CREATING'],
        );
      } else {
        // The wait is over: no step to tell.
        await cancelAtStripe(deps, payment, payment.paymentIntentId, 'abandoned', { notify: false });
      }
      payment = await deps.payments.get(orderId);
      if (!payment || !SETTLED.includes(payment.status))
        throw new PaymentStateError(orderId, payment?.status, 'CANCELLED');
    }
    if (payment.status === 'SUCCEEDED') return paidView(payment);
    throw new PaymentClosedError(payment);
  };

type IntentEvent = 'payment_intent.succeeded' | 'payment_intent.payment_failed' | 'payment_intent.canceled';
const TARGET: Record<IntentEvent, PaymentStatus> = {
  'payment_intent.succeeded': 'SUCCEEDED',
  'payment_intent.payment_failed': 'FAILED',
  'payment_intent.canceled': 'CANCELLED',
};
const isIntentEvent = (type: string): type is IntentEvent => Object.hasOwn(TARGET, type);

/** What a webhook reads of an event: the envelope Stripe signs. */
// Ids are bounded (Stripe's are about 30 characters) so that no key built from them exceeds DynamoDB's limits.
const StripeEventSchema = z.object({
  id: z.string().min(1).max(255),
  type: z.string().min(1),
  /** Seconds since the epoch; Stripe always sends it. */
  created: z.number().int().nonnegative().optional(),
  data: z.object({ object: z.unknown() }),
});

/** What the payment service reads of the PaymentIntent in `data.object`. */
const PaymentIntentSchema = z.object({
  id: z.string().min(1).max(255),
  object: z.literal('payment_intent'),
  status: z.string(),
  // Stripe always sends both; a success without them cannot be checked and is not taken (isForeignIntent).
  amount: z.number().int().nullish(),
  currency: z.string().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  last_payment_error: z
    .object({
      code: z.string().nullish(),
      decline_code: z.string().nullish(),
      message: z.string().nullish(),
    })
    .nullish(),
  cancellation_reason: z.string().nullish(),
});
type PaymentIntent = z.infer<typeof PaymentIntentSchema>;

function decode<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new InvalidStripeEventError('VALIDATION_FAILED', `The webhook body is not ${what}.`, {
      cause: result.error,
      issues: result.error.issues,
    });
  }
  return result.data;
}

export type WebhookResult =
  | 'applied'
  | 'refunded'
  | 'duplicate'
  | 'ignored'
  | 'foreign-refunded'
  | 'foreign-ignored'
  | 'unknown-payment'
  | 'refund-failed'
  | 'unhandled-type';

/**
 * An intent that is not the payment's: the payment already records another one (a second intent
 * for the order, found through `metadata.orderId`: made in the Dashboard, or by another environment
 * on the same account), or, for a success, one whose amount or currency differ from the payment's
 * (or are missing).
 */
function isForeignIntent(payment: Payment, intent: PaymentIntent, to: PaymentStatus): boolean {
  if (payment.paymentIntentId !== undefined && payment.paymentIntentId !== intent.id) return true;
  return (
    to === 'SUCCEEDED' &&
    (intent.amount !== payment.amount || intent.currency?.toLowerCase() !== payment.currency.toLowerCase())
  );
}

/**
 * An event about a foreign intent never changes the payment. Money it took is given back (its own
 * refund, keyed by that intent); either way the event id is recorded, so it is handled once.
 */
async function handleForeignIntent(
  deps: PaymentDeps,
  payment: Payment,
  intent: PaymentIntent,
  to: PaymentStatus,
  stripeEventId: string,
): Promise<WebhookResult> {
  const context = {
    orderId: payment.orderId,
    paymentIntentId: intent.id,
    recordedPaymentIntentId: payment.paymentIntentId,
    amount: intent.amount,
    currency: intent.currency,
    paymentAmount: payment.amount,
    paymentCurrency: payment.currency,
  };
  if (to !== 'SUCCEEDED') {
    logger.warn("ignoring an event about a PaymentIntent that is not the payment's", context);
    return (await deps.payments.recordStripeEvent(stripeEventId, deps.now()))
      ? 'foreign-ignored'
      : 'duplicate';
  }
  const { refundId } = await deps.gateway.refund(payment.orderId, intent.id);
  logger.warn(STRAY_CHARGE_REFUNDED, {
    ...context,
    refundId,
  });
  // Counted with the event's record, once: a repeated delivery refunds nothing new (one key at Stripe).
  if (!(await deps.payments.recordStripeEvent(stripeEventId, deps.now()))) return 'duplicate';
  addCount(Metric.StrayChargesRefunded);
  return 'foreign-refunded';
}

/**
 * Applies one verified Stripe event at most once: its id is recorded in the same transaction as
 * the change it causes (or on its own when it changes nothing), so a repeat or a concurrent
 * duplicate changes nothing. The event's PaymentIntent is authoritative for that event; the payment
 * only moves forward, so late or contradictory events change nothing, except a success after the
 * payment was closed without money (FAILED, CANCELLED), whose charge is refunded.
 */
export const applyStripeEvent =
  (deps: PaymentDeps) =>
  async (received: Stripe.Event): Promise<WebhookResult> => {
    const event = decode(StripeEventSchema, received, 'a Stripe event');
    if (event.type === 'refund.failed') return applyRefundFailure(deps, event);
    if (!isIntentEvent(event.type)) return 'unhandled-type';
    const intent = decode(PaymentIntentSchema, event.data.object, 'a PaymentIntent event');
    // metadata is free-form at Stripe: an orderId that cannot be one of ours names no order.
    const orderId = OrderIdSchema.safeParse(intent.metadata?.orderId);
    // By metadata only when the intent is not on record; an intent found that way is adopted only by
    // a payment with no intent recorded yet (isForeignIntent).
    const payment =
      (await deps.payments.findByPaymentIntent(intent.id)) ??
      (orderId.success ? await deps.payments.get(orderId.data) : undefined);
    if (!payment) return 'unknown-payment';

    const to = TARGET[event.type];
    if (isForeignIntent(payment, intent, to)) return handleForeignIntent(deps, payment, intent, to, event.id);
    if (to === 'FAILED' && declineIsRetryable(payment, intent))
      return recordRetryableDecline(deps, payment, intent, event);
    return settle(deps, payment, intent, to, event.id);
  };

/** Stripe's `last_payment_error`, as the payment records it and the order shows it. */
function lastErrorOf(intent: PaymentIntent): PaymentLastError {
  const error = intent.last_payment_error;
  return {
    code: error?.code || 'payment_failed',
    ...(error?.decline_code ? { declineCode: error.decline_code } : {}),
    message: error?.message || 'The payment failed.',
  };
}

/**
 * A decline the customer may retry with another card (declineIsRetryable): recorded on the payment
 * as its `lastError`, once per event, and nothing else. The payment stays open, the saga keeps
 * waiting and no event is written: `payment.failed` is final for its consumers. Another attempt's
 * success completes the payment; the payment timeout closes it if none does. A decline for a payment
 * closed meanwhile, or older than the one on record, changes nothing.
 */
async function recordRetryableDecline(
  deps: PaymentDeps,
  payment: Payment,
  intent: PaymentIntent,
  event: { id: string; created?: number | undefined },
): Promise<WebhookResult> {
  const now = deps.now();
  const result = await deps.payments.recordDecline(
    payment.orderId,
    intent.id,
    {
      lastError: lastErrorOf(intent),
      ...(event.created === undefined ? {} : { lastErrorAt: new Date(event.created * 1000).toISOString() }),
      stripeStatus: intent.status,
    },
    now,
    event.id,
  );
  if (result !== 'stale') return result;
  await deps.payments.recordStripeEvent(event.id, now);
  // Settled meanwhile (a success, the timeout, a cancel): the saga hears that outcome, once per token.
  const current = await deps.payments.get(payment.orderId);
  if (current) await notifySaga(deps, current);
  return 'ignored';
}

/**
 * Records what Stripe holds for the payment's own PaymentIntent (from a webhook, with its event id,
 * or from the answer of a call the service made) and tells the waiting saga step. The payment only
 * moves forward, so a repeat, a late or a contradictory report changes nothing, except a success
 * after the payment was closed without money, whose charge is refunded.
 */
async function settle(
  deps: PaymentDeps,
  payment: Payment,
  intent: PaymentIntent,
  to: PaymentStatus,
  stripeEventId?: string,
  options: { notify: boolean } = { notify: true },
): Promise<WebhookResult> {
  const now = deps.now();
  // Compensation stores the order's reason before it cancels at Stripe: it wins over Stripe's.
  const cancelReason = payment.cancellationReason ?? intent.cancellation_reason ?? 'CANCELED';
  const failure = intent.last_payment_error;
  const fields: Partial<Payment> = {
    paymentIntentId: intent.id,
    stripeStatus: intent.status,
    ...(to === 'FAILED'
      ? {
          failureCode: failure?.decline_code ?? failure?.code ?? 'payment_failed',
          failureMessage: failure?.message ?? 'The payment failed.',
        }
      : {}),
    ...(to === 'CANCELLED' ? { cancellationReason: cancelReason } : {}),
  };
  const settled = { ...payment, ...fields, status: to };
  const domainEvent =
    to === 'SUCCEEDED'
      ? paymentEvent('payment.succeeded', settled, intent.id, {}, now)
      : to === 'FAILED'
        ? paymentEvent(
            'payment.failed',
            settled,
            intent.id,
            { reason: 'DECLINED', failureCode: fields.failureCode },
            now,
          )
        : paymentEvent('payment.cancelled', settled, intent.id, { reason: cancelReason }, now);

  let result: TransitionResult | 'refunded' = await deps.payments.transition(
    payment.orderId,
    to,
    fields,
    domainEvent,
    now,
    stripeEventId,
    undefined,
    intent.id,
  );
  // The wait's end: the outcome recorded for a payment still open. Its start is the payment's
  // creation, when the saga's payment step (CreatePayment, else RequestPayment) asked for it.
  if (result === 'applied' && !SETTLED.includes(payment.status))
    addDuration(Metric.PaymentWait, now.getTime() - Date.parse(payment.createdAt));
  let current: Payment | undefined;
  if (result === 'stale') {
    current = await deps.payments.get(payment.orderId);
    // Another intent was recorded meanwhile (the payment step, or another event adopting one).
    if (stripeEventId && current && isForeignIntent(current, intent, to))
      return handleForeignIntent(deps, current, intent, to, stripeEventId);
    if (to === 'SUCCEEDED') result = await refundLateSuccess(deps, current, intent, stripeEventId);
  }
  if (result === 'stale' && stripeEventId) await deps.payments.recordStripeEvent(stripeEventId, now);
  // Also on a duplicate: the first delivery may have stopped before the saga was told. A payment
  // read after a stale write is current (recording the event id changes no payment); else reread.
  if (result !== 'stale' || !current) current = await deps.payments.get(payment.orderId);
  if (current && options.notify) await notifySaga(deps, current);
  return result === 'stale' ? 'ignored' : result;
}

/** What the payment service reads of the Refund in a `refund.failed` event's `data.object`. */
const RefundSchema = z.object({
  id: z.string().min(1).max(255),
  object: z.literal('refund'),
  payment_intent: z.string().min(1).max(255).nullish(),
  failure_reason: z.string().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
});

/**
 * `refund.failed`: a refund went back to the merchant's balance instead of the customer (a closed
 * card, say). Nothing can refund it again automatically, so it is recorded on the payment (once,
 * with the event id) and logged for the RefundsFailed alarm; someone has to settle it.
 */
async function applyRefundFailure(deps: PaymentDeps, event: { id: string; data: { object: unknown } }) {
  const refund = decode(RefundSchema, event.data.object, 'a Refund event');
  const orderId = OrderIdSchema.safeParse(refund.metadata?.orderId);
  const payment =
    (refund.payment_intent ? await deps.payments.findByPaymentIntent(refund.payment_intent) : undefined) ??
    (orderId.success ? await deps.payments.get(orderId.data) : undefined);
  if (!payment) return 'unknown-payment';
  const reason = refund.failure_reason ?? 'unknown';
  const now = deps.now();
  // A refund of the payment's own intent is recorded on it. Any other (a second intent's, or a
  // Dashboard refund's) has nothing to record it on: the log line (and alarm) is what remains.
  const intentId = refund.payment_intent;
  const result =
    intentId && intentId === payment.paymentIntentId
      ? await deps.payments.recordRefundFailure(payment.orderId, intentId, refund.id, reason, now, event.id)
      : (await deps.payments.recordStripeEvent(event.id, now))
        ? 'applied'
        : 'duplicate';
  // An intent once recorded never changes (every write is conditional on it): not expected.
  if (result === 'stale')
    throw new Error(`Payment of order ${payment.orderId} no longer records ${intentId}`);
  if (result === 'duplicate') return 'duplicate';
  logger.warn(REFUND_FAILED, {
    orderId: payment.orderId,
    paymentIntentId: refund.payment_intent,
    refundId: refund.id,
    reason,
  });
  addCount(Metric.RefundsFailed);
  return 'refund-failed';
}

/**
 * Money taken for a payment that was already closed without it (the saga heard FAILED or
 * CANCELLED, so the order is or will be cancelled): refund it and record REFUNDED with the event.
 * Concurrent deliveries of the event, or compensation doing the same, meet at Stripe on one
 * idempotency key (one refund) and in DynamoDB on the conditional transition (one payment.refunded).
 */
async function refundLateSuccess(
  deps: PaymentDeps,
  current: Payment | undefined,
  intent: PaymentIntent,
  stripeEventId: string | undefined,
): Promise<TransitionResult | 'refunded'> {
  if (!current || !REFUNDABLE_WHEN_PAID_LATE.includes(current.status)) return 'stale';
  const { orderId } = current;
  const { refundId } = await deps.gateway.refund(orderId, intent.id);
  const now = deps.now();
  const reason =
    current.cancellationReason ?? (current.status === 'FAILED' ? 'PAYMENT_FAILED' : 'PAYMENT_CANCELED');
  logger.warn('refunding a payment that succeeded after it was closed', {
    orderId,
    paymentIntentId: intent.id,
    closedAs: current.status,
  });
  const result = await deps.payments.transition(
    orderId,
    'REFUNDED',
    { paymentIntentId: intent.id, stripeStatus: intent.status, refundId },
    paymentEvent('payment.refunded', current, intent.id, { reason, refundId }, now),
    now,
    stripeEventId,
    REFUNDABLE_WHEN_PAID_LATE,
    intent.id,
  );
  return result === 'applied' ? 'refunded' : result;
}

/**
 * Compensation: cancels the PaymentIntent, or refunds it when it was already paid. Repeating it
 * changes nothing.
 */
export const cancelPayment =
  (deps: PaymentDeps) =>
  async (command: CancelPaymentCommand): Promise<{ status: PaymentStatus | 'NONE' }> => {
    const payment = await deps.payments.get(command.orderId);
    if (!payment) return { status: 'NONE' };
    const reason =
      command.cancellationReason ??
      (command.failure ? cancellationReasonFor(command.failure.Error) : undefined) ??
      'COMPENSATION';
    const now = deps.now();
    const intentId = payment.paymentIntentId;

    if (payment.status === 'CANCELLED' || payment.status === 'REFUNDED') return { status: payment.status };
    if (!intentId) {
      // No intent on record means none was confirmed: an intent is only confirmed after its id is
      // stored. Only while that still holds (CREATING) may it close without Stripe; if the payment
      // step recorded an intent meanwhile, start over and cancel that intent at Stripe.
      const closed = await deps.payments.transition(
        payment.orderId,
        'CANCELLED',
        { cancellationReason: reason },
        undefined,
        now,
        undefined,
        ['CREATING'],
      );
      if (closed === 'applied') return { status: 'CANCELLED' };
      return cancelPayment(deps)(command);
    }

    // Before Stripe is called: its payment_intent.canceled may be applied before this run's own write.
    await deps.payments.noteCancellationReason(payment.orderId, reason, now);
    let paid = payment.status === 'SUCCEEDED';
    if (!paid) paid = (await deps.gateway.cancelIntent(payment.orderId, intentId)).status === 'succeeded';
    if (paid) {
      const { refundId } = await deps.gateway.refund(payment.orderId, intentId);
      if (payment.status === 'CREATING' || payment.status === 'INITIATED') {
        // Paid, but its webhook has not been applied yet: record the success first.
        await moveTo(
          deps,
          payment.orderId,
          'SUCCEEDED',
          {},
          paymentEvent('payment.succeeded', payment, intentId, {}, now),
          now,
        );
      }
      // Later than the success it follows, so the outbox's time-ordered keys follow the commits.
      const refundedAt = new Date(Math.max(deps.now().getTime(), now.getTime() + 1));
      await moveTo(
        deps,
        payment.orderId,
        'REFUNDED',
        { refundId, cancellationReason: reason },
        paymentEvent('payment.refunded', payment, intentId, { reason, refundId }, refundedAt),
        refundedAt,
      );
      return { status: 'REFUNDED' };
    }
    await moveTo(
      deps,
      payment.orderId,
      'CANCELLED',
      { stripeStatus: 'canceled', cancellationReason: reason },
      paymentEvent('payment.cancelled', payment, intentId, { reason }, now),
      now,
    );
    return { status: 'CANCELLED' };
  };

/** A transition that must happen: already there (a concurrent run) is fine, anything else is a fault. */
async function moveTo(
  deps: PaymentDeps,
  orderId: string,
  to: PaymentStatus,
  fields: Partial<Payment>,
  event: NewEvent | undefined,
  now: Date,
): Promise<void> {
  if ((await deps.payments.transition(orderId, to, fields, event, now)) === 'applied') return;
  const current = await deps.payments.get(orderId);
  if (current?.status !== to) throw new PaymentStateError(orderId, current?.status, to);
}

/** What a customer's cancel ended in: the intent canceled (or none made yet), or the payment won. */
export type CustomerCancelOutcome = 'canceled' | 'paid' | 'none';

/**
 * A customer's cancel while the saga may be waiting for the payment (POST /orders/{id}/cancel):
 * Stripe decides the race with the payment. The intent is canceled at Stripe, the payment closed
 * CANCELLED (CUSTOMER_CANCELLED) and the waiting step told at once, so the saga compensates within
 * seconds; a cancel refused because the intent just succeeded records the success instead, and the
 * order completes. `none`: no payment exists yet, so the order's own record of the cancel decides.
 */
export const cancelForCustomer =
  (deps: PaymentDeps) =>
  async (orderId: string): Promise<CustomerCancelOutcome> => {
    const payment = await deps.payments.get(orderId);
    if (!payment) return 'none';
    if (payment.status === 'SUCCEEDED') return 'paid';
    if (SETTLED.includes(payment.status)) return 'canceled';
    const now = deps.now();
    await deps.payments.noteCancellationReason(orderId, 'CUSTOMER_CANCELLED', now, { keepExisting: true });
    if (!payment.paymentIntentId) {
      // No intent recorded, so none was confirmed: closed without Stripe, while that still holds.
      const closed = await deps.payments.transition(
        orderId,
        'CANCELLED',
        { cancellationReason: 'CUSTOMER_CANCELLED' },
        undefined,
        now,
        undefined,
        ['CREATING'],
      );
      if (closed !== 'applied') return cancelForCustomer(deps)(orderId);
      const current = await deps.payments.get(orderId);
      if (current) await notifySaga(deps, current);
      return 'canceled';
    }
    await cancelAtStripe(deps, payment, payment.paymentIntentId, 'requested_by_customer', { notify: true });
    const after = await deps.payments.get(orderId);
    return after?.status === 'SUCCEEDED' ? 'paid' : 'canceled';
  };

/**
 * What the order shows its customer while the payment waits for them: the client secret to confirm
 * with, and the decline of their last attempt, if any, so they can try another card. Read from the
 * payment on demand (the secret never travels through the saga's state or history); both null once
 * the payment is settled, or before there is one.
 */
export const checkoutFor =
  (deps: PaymentDeps) =>
  async (orderId: string): Promise<CheckoutView> => {
    const payment = await deps.payments.get(orderId);
    if (!payment || SETTLED.includes(payment.status)) return { clientSecret: null, lastError: null };
    return { clientSecret: payment.clientSecret ?? null, lastError: payment.lastError ?? null };
  };
