import type Stripe from 'stripe';
import { createEvent, type CloudEvent, type EventData } from '../../events/envelope.ts';
import { logger } from '../../shared/logger.ts';
import { cancellationReasonFor, PAYMENT_CANCELED, PAYMENT_FAILED } from '../../shared/saga.ts';
import {
  PAYMENT_SOURCE,
  PaymentStateError,
  SETTLED,
  type CancelPaymentCommand,
  type Payment,
  type PaymentStatus,
  type RequestPaymentCommand,
} from './payment.ts';
import type { PaymentRepository } from './payment-repository.ts';
import type { SagaNotifier } from './saga-notifier.ts';
import type { PaymentGateway } from './stripe-gateway.ts';

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
): CloudEvent {
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
  const result =
    payment.status === 'SUCCEEDED' || payment.status === 'REFUNDED'
      ? await deps.saga.succeed(token, {
          paymentIntentId: payment.paymentIntentId,
          status: 'succeeded',
          amount: payment.amount,
          currency: payment.currency,
        })
      : await deps.saga.fail(token, payment.status === 'FAILED' ? PAYMENT_FAILED : PAYMENT_CANCELED, {
          paymentIntentId: payment.paymentIntentId,
          failureCode: payment.failureCode,
          message: payment.failureMessage,
        });
  if (result === 'closed')
    logger.info('saga step no longer waiting for payment', { orderId: payment.orderId });
  await deps.payments.markNotified(payment.orderId, token);
}

/**
 * The saga's callback step: stores the task token with the payment, creates the PaymentIntent
 * unconfirmed and records its id, then confirms it with the order's payment method. Nothing can be
 * charged before the id is on record, so compensation can always find what to cancel or refund.
 * The outcome arrives later through the webhook.
 */
export const requestPayment = (deps: PaymentDeps) => async (command: RequestPaymentCommand) => {
  const payment = await deps.payments.begin(command, deps.now());
  if (SETTLED.includes(payment.status)) {
    await notifySaga(deps, payment);
    return { paymentIntentId: payment.paymentIntentId, status: payment.status };
  }
  let intentId = payment.paymentIntentId;
  let status = payment.stripeStatus ?? 'requires_payment_method';
  if (!intentId) {
    const intent = await deps.gateway.createIntent({
      orderId: command.orderId,
      amount: payment.amount,
      currency: payment.currency,
    });
    const recorded = await deps.payments.transition(
      command.orderId,
      'INITIATED',
      { paymentIntentId: intent.id, stripeStatus: intent.status },
      paymentEvent('payment.initiated', payment, intent.id, { status: intent.status }, deps.now()),
      deps.now(),
    );
    if (recorded !== 'applied') {
      const current = await deps.payments.get(command.orderId);
      if (current?.paymentIntentId !== intent.id) {
        // Compensation closed the payment while this intent was being created: never confirm it.
        if (current?.status === 'CANCELLED') {
          await deps.gateway.cancelIntent(command.orderId, intent.id);
          return { paymentIntentId: intent.id, status: 'canceled' };
        }
        throw new PaymentStateError(command.orderId, current?.status, 'INITIATED');
      }
    }
    intentId = intent.id;
    status = intent.status;
  }
  if (command.paymentMethodId) {
    status = (await deps.gateway.confirmIntent(command.orderId, intentId, command.paymentMethodId)).status;
  }
  return { paymentIntentId: intentId, status };
};

type IntentEvent = 'payment_intent.succeeded' | 'payment_intent.payment_failed' | 'payment_intent.canceled';
const TARGET: Record<IntentEvent, PaymentStatus> = {
  'payment_intent.succeeded': 'SUCCEEDED',
  'payment_intent.payment_failed': 'FAILED',
  'payment_intent.canceled': 'CANCELLED',
};

export type WebhookResult = 'applied' | 'duplicate' | 'ignored' | 'unknown-payment' | 'unhandled-type';

/**
 * Applies one verified Stripe event at most once. The event's PaymentIntent is authoritative for
 * that event; the payment only moves forward, so late or contradictory events change nothing.
 */
export const applyStripeEvent =
  (deps: PaymentDeps) =>
  async (event: Stripe.Event): Promise<WebhookResult> => {
    if (!(event.type in TARGET)) return 'unhandled-type';
    const intent = event.data.object as Stripe.PaymentIntent;
    const payment =
      (await deps.payments.findByPaymentIntent(intent.id)) ??
      (intent.metadata?.orderId ? await deps.payments.get(intent.metadata.orderId) : undefined);
    if (!payment) return 'unknown-payment';

    const now = deps.now();
    const to = TARGET[event.type as IntentEvent];
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
          : paymentEvent(
              'payment.cancelled',
              settled,
              intent.id,
              { reason: intent.cancellation_reason ?? 'CANCELED' },
              now,
            );

    const result = await deps.payments.transition(payment.orderId, to, fields, domainEvent, now, event.id);
    if (result === 'stale') await deps.payments.recordStripeEvent(event.id, now);
    // Also on a duplicate: the first delivery may have stopped before the saga was told.
    const current = await deps.payments.get(payment.orderId);
    if (current) await notifySaga(deps, current);
    return result === 'applied' ? 'applied' : result === 'duplicate' ? 'duplicate' : 'ignored';
  };

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
      command.failure?.Error ??
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
        {},
        undefined,
        now,
        undefined,
        ['CREATING'],
      );
      if (closed === 'applied') return { status: 'CANCELLED' };
      return cancelPayment(deps)(command);
    }

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
      await moveTo(
        deps,
        payment.orderId,
        'REFUNDED',
        { refundId },
        paymentEvent('payment.refunded', payment, intentId, { reason, refundId }, now),
        now,
      );
      return { status: 'REFUNDED' };
    }
    await moveTo(
      deps,
      payment.orderId,
      'CANCELLED',
      { stripeStatus: 'canceled' },
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
  event: CloudEvent | undefined,
  now: Date,
): Promise<void> {
  if ((await deps.payments.transition(orderId, to, fields, event, now)) === 'applied') return;
  const current = await deps.payments.get(orderId);
  if (current?.status !== to) throw new PaymentStateError(orderId, current?.status, to);
}
