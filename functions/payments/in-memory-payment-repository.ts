import { parseEvent, type CloudEvent, type NewEvent } from '../../events/envelope.ts';
import type { Subject } from '../../events/subjects.ts';
import { sequenceEvents } from '../../shared/outbox/write.ts';
import type { PaymentLastError } from '../../shared/saga.ts';
import { ALLOWED_FROM, type Payment, type PaymentStatus } from './payment.ts';
import type { BeginPayment, PaymentRepository, TransitionResult } from './payment-repository.ts';

/** What `put` fills in of a seeded payment: the fields every payment has, and any others. */
export type PaymentSeed = Pick<Payment, 'orderId' | 'amount' | 'currency' | 'createdAt' | 'updatedAt'> &
  Partial<Payment>;

/**
 * PaymentRepository in memory, for domain tests: the status only moves forward (ALLOWED_FROM), and
 * the status, its outbox event and the Stripe event id commit together or not at all.
 * payment-repository.contract.ts holds it to what dynamoPaymentRepository does.
 */
export class InMemoryPayments implements PaymentRepository {
  readonly payments = new Map<string, Payment>();
  readonly outbox: CloudEvent[] = [];
  readonly stripeEvents = new Set<string>();
  readonly #seed: PaymentSeed | undefined;

  /** `seed`: what `put` fills in (a test's usual payment). */
  constructor(options: { seed?: PaymentSeed } = {}) {
    this.#seed = options.seed;
  }

  async get(orderId: string) {
    const payment = this.payments.get(orderId);
    return payment ? structuredClone(payment) : undefined;
  }

  async findByPaymentIntent(paymentIntentId: string) {
    const payment = [...this.payments.values()].find((p) => p.paymentIntentId === paymentIntentId);
    return payment ? structuredClone(payment) : undefined;
  }

  async begin(command: BeginPayment, now: Date) {
    const existing = this.payments.get(command.orderId);
    const token = {
      ...(command.taskToken ? { taskToken: command.taskToken } : {}),
      ...(command.confirmedBy ? { confirmedBy: command.confirmedBy } : {}),
    };
    const payment: Payment = existing
      ? { ...existing, ...token, updatedAt: now.toISOString() }
      : {
          orderId: command.orderId,
          amount: command.amount,
          currency: command.currency,
          status: 'CREATING',
          ...token,
          createdAt: now.toISOString(),
          updatedAt: now.toISOString(),
        };
    this.payments.set(command.orderId, payment);
    return structuredClone(payment);
  }

  async transition(
    orderId: string,
    to: PaymentStatus,
    fields: Partial<Payment>,
    event: NewEvent | undefined,
    now: Date,
    stripeEventId?: string,
    only?: readonly PaymentStatus[],
    paymentIntentId?: string,
  ): Promise<TransitionResult> {
    if (stripeEventId && this.stripeEvents.has(stripeEventId)) return 'duplicate';
    const payment = this.payments.get(orderId);
    const from = only ? ALLOWED_FROM[to].filter((status) => only.includes(status)) : ALLOWED_FROM[to];
    if (!payment || !from.includes(payment.status)) return 'stale';
    const recorded = payment.paymentIntentId;
    if (paymentIntentId !== undefined && recorded !== undefined && recorded !== paymentIntentId)
      return 'stale';
    this.payments.set(orderId, { ...payment, ...fields, status: to, updatedAt: now.toISOString() });
    if (event) {
      const last = this.outbox.filter((written) => written.subject === orderId).length;
      this.outbox.push(...sequenceEvents([event], last));
    }
    if (stripeEventId) this.stripeEvents.add(stripeEventId);
    return 'applied';
  }

  async recordRefundFailure(
    orderId: string,
    paymentIntentId: string,
    refundId: string,
    reason: string,
    now: Date,
    stripeEventId: string,
  ) {
    if (this.stripeEvents.has(stripeEventId)) return 'duplicate' as const;
    const payment = this.payments.get(orderId);
    if (!payment || payment.paymentIntentId !== paymentIntentId) return 'stale' as const;
    this.payments.set(orderId, {
      ...payment,
      failedRefundId: refundId,
      refundFailedAt: now.toISOString(),
      refundFailureReason: reason,
      updatedAt: now.toISOString(),
    });
    this.stripeEvents.add(stripeEventId);
    return 'applied' as const;
  }

  async recordDecline(
    orderId: string,
    paymentIntentId: string,
    decline: { lastError: PaymentLastError; lastErrorAt?: string; stripeStatus: string },
    now: Date,
    stripeEventId: string,
  ) {
    if (this.stripeEvents.has(stripeEventId)) return 'duplicate' as const;
    const payment = this.payments.get(orderId);
    if (
      !payment ||
      !['CREATING', 'INITIATED'].includes(payment.status) ||
      payment.paymentIntentId !== paymentIntentId ||
      (decline.lastErrorAt && payment.lastErrorAt && payment.lastErrorAt > decline.lastErrorAt)
    )
      return 'stale' as const;
    this.payments.set(orderId, { ...payment, ...decline, updatedAt: now.toISOString() });
    this.stripeEvents.add(stripeEventId);
    return 'applied' as const;
  }

  async recordStripeEvent(stripeEventId: string) {
    if (this.stripeEvents.has(stripeEventId)) return false;
    this.stripeEvents.add(stripeEventId);
    return true;
  }

  async noteCancellationReason(
    orderId: string,
    reason: string,
    now: Date,
    options?: { keepExisting?: boolean },
  ) {
    const payment = this.payments.get(orderId);
    if (!payment) return;
    const keep = options?.keepExisting && payment.cancellationReason;
    // As DynamoDB's if_not_exists: the write happens, and moves updatedAt, even when it keeps the reason.
    this.payments.set(orderId, {
      ...payment,
      cancellationReason: keep ? payment.cancellationReason : reason,
      updatedAt: now.toISOString(),
    });
  }

  async nextIntentAttempt(orderId: string, now: Date) {
    const payment = this.payments.get(orderId);
    if (payment && !payment.paymentIntentId)
      this.payments.set(orderId, {
        ...payment,
        intentAttempt: (payment.intentAttempt ?? 0) + 1,
        updatedAt: now.toISOString(),
      });
  }

  async markNotified(orderId: string, taskToken: string) {
    const payment = this.payments.get(orderId);
    if (payment?.taskToken === taskToken)
      this.payments.set(orderId, { ...payment, notifiedToken: taskToken });
  }

  /** Seeds a payment as a previous run would have left it: the constructor's `seed`, with these fields. */
  put(payment: Partial<Payment> & Pick<Payment, 'status'>) {
    if (!this.#seed) throw new Error('InMemoryPayments.put needs the constructor option `seed`');
    const seeded: Payment = { ...this.#seed, ...payment };
    this.payments.set(seeded.orderId, seeded);
  }

  /** Every outbox event, decoded with its contract schema. */
  events() {
    return this.outbox.map((event) => parseEvent(event));
  }

  eventsOf(type: Subject) {
    return this.events().filter((event) => event.type === type);
  }
}
