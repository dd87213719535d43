import { z } from 'zod';
import {
  SagaOutcome,
  SagaOutcomeError,
  type OutcomeDetail,
  type PaymentLastError,
  type SagaOutcomeName,
} from '../../shared/saga.ts';

// The saga's commands to this service are defined with the saga's contract.
export {
  CancelPaymentCommandSchema,
  CreatePaymentCommandSchema,
  RequestPaymentCommandSchema,
  ResolvePaymentCommandSchema,
  type CancelPaymentCommand,
  type CreatePaymentCommand,
  type RequestPaymentCommand,
  type ResolvePaymentCommand,
} from '../../shared/saga.ts';

export const PAYMENT_SOURCE = 'order-saga/payments';

/**
 * The payment's own state machine; it only moves forward, towards where the money ends up:
 *
 *   CREATING   → INITIATED, SUCCEEDED, FAILED, CANCELLED
 *   INITIATED  → SUCCEEDED, FAILED, CANCELLED
 *   SUCCEEDED  → REFUNDED
 *   FAILED     → CANCELLED, REFUNDED
 *   CANCELLED  → REFUNDED
 *   REFUNDED     (final)
 *
 * SUCCEEDED, FAILED and CANCELLED are the outcomes the saga hears. FAILED and CANCELLED say that
 * no money was kept for the order, and the saga cancels it; REFUNDED says money was taken and given
 * back. A FAILED or CANCELLED payment moves on to REFUNDED when money turns out to be taken after
 * all: compensation finds the PaymentIntent paid when it tries to cancel it (a customer paid with
 * another card after a final decline), or a verified `payment_intent.succeeded` arrives after the payment
 * was closed. The charge is then refunded (one refund per PaymentIntent: the Stripe idempotency key
 * is derived from the order and the intent), and the order stays cancelled. Nothing leaves REFUNDED, and nothing
 * goes back to SUCCEEDED once the saga was told otherwise: a late success is refunded, never
 * recorded as a success; a late failure or cancel after SUCCEEDED changes nothing.
 */
export type PaymentStatus = 'CREATING' | 'INITIATED' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'REFUNDED';

export const ALLOWED_FROM: Record<PaymentStatus, readonly PaymentStatus[]> = {
  CREATING: [],
  INITIATED: ['CREATING'],
  SUCCEEDED: ['CREATING', 'INITIATED'],
  FAILED: ['CREATING', 'INITIATED'],
  CANCELLED: ['CREATING', 'INITIATED', 'FAILED'],
  REFUNDED: ['SUCCEEDED', 'FAILED', 'CANCELLED'],
};

/** Closed without money kept: a success that arrives now is refunded. */
export const REFUNDABLE_WHEN_PAID_LATE: readonly PaymentStatus[] = ['FAILED', 'CANCELLED'];

/** Outcomes the saga waits for; once one is reached the waiting task is told exactly once. */
export const SETTLED: readonly PaymentStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'REFUNDED'];

export interface Payment {
  orderId: string;
  amount: number;
  currency: string;
  status: PaymentStatus;
  paymentIntentId?: string;
  stripeStatus?: string;
  failureCode?: string;
  failureMessage?: string;
  refundId?: string;
  /**
   * Stripe reported a refund of the payment's PaymentIntent failed (`refund.failed`): the money went
   * back to the merchant's balance, not to the customer, and someone has to settle it another way.
   */
  failedRefundId?: string;
  refundFailedAt?: string;
  refundFailureReason?: string;
  /** The PaymentIntent's client secret: the order hands it to its customer, who confirms with it. */
  clientSecret?: string;
  /**
   * Who confirms the PaymentIntent, as the payment step learnt it from the order: `server` with the
   * order's payment method (a decline is final), `browser` by the customer with the client secret
   * (a decline leaves the intent waiting for another card). Unset until the payment step ran, and on
   * payments written before it was recorded (see declineIsRetryable).
   */
  confirmedBy?: 'server' | 'browser';
  /**
   * The last decline the customer may retry (declineIsRetryable), from Stripe's `last_payment_error`;
   * a final decline is `failureCode` and `failureMessage` instead.
   */
  lastError?: PaymentLastError;
  /** When Stripe created the event of `lastError`: an earlier attempt's, delivered late, loses. */
  lastErrorAt?: string;
  /** Why compensation closed the payment (the order's cancellation reason); a late refund reports it. */
  cancellationReason?: string;
  /** Which PaymentIntent creation key is next: a 5xx spends one (Stripe stores it under the key). */
  intentAttempt?: number;
  /** The Step Functions task token of the saga step waiting for the outcome. */
  taskToken?: string;
  /** Set once the waiting task has been told the outcome for this token. */
  notifiedToken?: string;
  createdAt: string;
  updatedAt: string;
}

/**
 * What `CreatePayment` answers the saga, and the order records: the PaymentIntent. Every key is
 * present (null when unknown), since the saga reads them with JSONPath. The client secret is not in
 * it: it would sit in the execution's state and history, readable with states:GetExecutionHistory;
 * the order asks the payment for it when its customer reads the order.
 */
export interface PaymentIntentView {
  paymentIntentId: string | null;
  status: string;
}

/** What the orders service asks of the payment on its customer's behalf (functions/payments/customer-payment.ts). */
export const CustomerPaymentRequestSchema = z.discriminatedUnion('action', [
  z.object({ action: z.literal('cancel'), orderId: z.string().min(1).max(64) }),
  z.object({ action: z.literal('clientSecret'), orderId: z.string().min(1).max(64) }),
]);

/**
 * The customer-payment function's answer to `clientSecret`: what the order shows its customer while
 * the payment waits for them (both null once it is settled, or before there is a payment).
 */
export interface CheckoutView {
  clientSecret: string | null;
  lastError: PaymentLastError | null;
}

/** What the saga records of a payment whose money is kept (the payment step's and ResolvePayment's answer). */
export interface PaidView {
  paymentIntentId: string;
  status: 'succeeded';
  amount: number;
  currency: string;
}

/**
 * Whether a decline of the payment's own PaymentIntent leaves the payment waiting: the customer
 * confirms in the browser (the order has no payment method), Stripe puts the intent back to
 * `requires_payment_method`, and they may try another card until the payment timeout. The payment
 * step records who confirms before it confirms anything itself, so a payment it has not reached
 * yet (no task token) can only have been confirmed in the browser. A payment with a task token but
 * no `confirmedBy` was written before that was recorded: its decline stays final, as it was then.
 */
export function declineIsRetryable(payment: Payment, intent: { id: string; status: string }): boolean {
  if (intent.status !== 'requires_payment_method' || payment.paymentIntentId !== intent.id) return false;
  return payment.confirmedBy === 'browser' || (!payment.confirmedBy && !payment.taskToken);
}

/**
 * The outcome a payment closed without money ends the saga with: a customer's cancel, the payment
 * timeout, a decline, or any other cancel.
 */
export function closedOutcome(payment: Payment): SagaOutcomeName {
  if (payment.cancellationReason === 'CUSTOMER_CANCELLED') return SagaOutcome.CustomerCancelled;
  if (payment.cancellationReason === 'PAYMENT_TIMEOUT') return SagaOutcome.PaymentTimeout;
  if (payment.failureCode) return SagaOutcome.PaymentDeclined;
  return SagaOutcome.PaymentCanceled;
}

/**
 * The payment ended without money (see closedOutcome): the saga compensates with its reason. A
 * decline carries Stripe's code and sentence as its detail, which the order shows.
 */
export class PaymentClosedError extends SagaOutcomeError {
  constructor(payment: Payment, options?: ErrorOptions) {
    const outcome = closedOutcome(payment);
    super(
      outcome,
      `The payment of order ${payment.orderId} is ${payment.status}` +
        (payment.failureCode ? ` (${payment.failureCode})` : '') +
        (payment.cancellationReason ? `: ${payment.cancellationReason}` : ''),
      {
        ...options,
        ...(outcome === SagaOutcome.PaymentDeclined && payment.failureCode
          ? { detail: declineDetail(payment.failureCode, payment.failureMessage) }
          : {}),
      },
    );
  }
}

/** A decline as the order shows it: Stripe's code, and its sentence when it gave one. */
const declineDetail = (failureCode: string, failureMessage?: string): OutcomeDetail => ({
  declineCode: failureCode,
  ...(failureMessage ? { message: failureMessage.slice(0, 500) } : {}),
});

/** The amount is outside what Stripe charges in that currency: refused before any PaymentIntent exists. */
export class PaymentAmountRefusedError extends SagaOutcomeError {
  readonly code: 'amount_too_small' | 'amount_too_large';
  constructor(
    orderId: string,
    amount: number,
    currency: string,
    code: 'amount_too_small' | 'amount_too_large',
    limit: number,
    options?: ErrorOptions,
  ) {
    super(
      SagaOutcome.PaymentAmountRefused,
      `Order ${orderId}: ${amount} ${currency} is ${code === 'amount_too_small' ? 'below' : 'above'} ` +
        `Stripe's ${code === 'amount_too_small' ? 'minimum' : 'maximum'} charge of ${limit} (${code})`,
      { ...options, detail: { declineCode: code } },
    );
    this.code = code;
  }
}

/**
 * The stored payment is not where this step needs it: never a silent no-op. Not retried (repeating
 * it changes nothing): before money the order is compensated PROCESSING_ERROR, after it the
 * execution fails for an operator.
 */
export class PaymentStateError extends Error {
  constructor(
    orderId: string,
    found: PaymentStatus | undefined,
    wanted: PaymentStatus,
    options?: ErrorOptions,
  ) {
    super(`Payment of order ${orderId} is ${found ?? 'missing'}; it cannot become ${wanted}`, options);
    this.name = 'PaymentStateError';
  }
}

/**
 * A body whose signature verified but that is not a Stripe event this service can read (not JSON,
 * or not shaped like one): refused with a 400, never guessed at. Stripe itself never sends one.
 */
export class InvalidStripeEventError extends Error {
  readonly code: 'INVALID_JSON' | 'VALIDATION_FAILED';
  readonly issues: readonly z.core.$ZodIssue[];
  constructor(
    code: 'INVALID_JSON' | 'VALIDATION_FAILED',
    message: string,
    options?: ErrorOptions & { issues?: readonly z.core.$ZodIssue[] },
  ) {
    super(message, options);
    this.name = 'InvalidStripeEventError';
    this.code = code;
    this.issues = options?.issues ?? [];
  }
}

/**
 * The log message of a refunded stray charge: money taken by a PaymentIntent the payment does not
 * own, or for another amount or currency. The stack counts these lines and alarms on them.
 */
export const STRAY_CHARGE_REFUNDED = 'refunded a charge the payment does not own; the payment is unchanged';

/** The log message of a refund Stripe reports failed; the stack counts these lines and alarms on them. */
export const REFUND_FAILED = 'a refund failed at Stripe: the customer has not got the money back';
