import { z } from 'zod';
import {
  CurrencySchema,
  SkuSchema,
  type CancellationReason,
  type OrderLine,
  type OrderStatus,
  type SagaState,
} from '../../events/common.ts';
import { createEvent, type NewEvent } from '../../events/envelope.ts';
import type { Caller } from '../../shared/caller.ts';
import { ValidationError } from '../../shared/errors.ts';
import {
  cancellationReasonFor,
  isSagaOutcome,
  parseOutcomeDetail,
  PaymentFailureCauseSchema,
  readOutcomeMessage,
  SagaOutcome,
  SagaOutcomeError,
  type OutcomeDetail,
  type PaymentLastError,
  type SagaStep,
} from '../../shared/saga.ts';

// The saga's commands to this service are defined with the saga's contract.
export { SagaStepSchema, type SagaStep } from '../../shared/saga.ts';

export const ORDER_SOURCE = 'order-saga/orders';
export const DEFAULT_CURRENCY = 'usd';

export const CustomerIdSchema = z.string().min(1).max(64);

/**
 * `POST /orders`. `customerId` may be left out by a customer signed in with a token (it is the
 * token's `sub`); the back office must name the customer.
 */
export const CreateOrderRequestSchema = z.strictObject({
  customerId: CustomerIdSchema.optional(),
  items: z
    .array(z.strictObject({ sku: SkuSchema, quantity: z.number().int().min(1).max(999) }))
    .min(1)
    .max(50),
  paymentMethodId: z.string().min(1).max(255).optional(),
  currency: CurrencySchema.optional(),
});
export type CreateOrderRequest = z.infer<typeof CreateOrderRequestSchema>;
/** A request whose customer is settled (placeOrder's input). */
export type PlaceOrderRequest = CreateOrderRequest & { customerId: string };

/**
 * The customer an order is placed for: a customer's own `sub` (a body naming someone else is
 * refused), or the customer the back office names.
 */
export function customerOf(
  request: CreateOrderRequest,
  caller: Caller,
): { customerId: string } | { refused: 'CUSTOMER_MISMATCH' | 'CUSTOMER_REQUIRED' } {
  if (caller.kind === 'customer') {
    if (
      caller.customerId === '' ||
      (request.customerId !== undefined && request.customerId !== caller.customerId)
    )
      return { refused: 'CUSTOMER_MISMATCH' };
    return { customerId: caller.customerId };
  }
  return request.customerId === undefined
    ? { refused: 'CUSTOMER_REQUIRED' }
    : { customerId: request.customerId };
}

/**
 * Whether the caller may see and act on the order: its own customer, or the back office. Every
 * other caller is told the order does not exist, so that ids cannot be probed.
 */
export const isVisibleTo = (order: Pick<Order, 'customerId'>, caller: Caller): boolean =>
  caller.kind === 'backOffice' || caller.customerId === order.customerId;

export interface OrderPayment {
  paymentIntentId: string;
  status: string;
  clientSecret?: string;
}

export interface Order {
  orderId: string;
  customerId: string;
  items: OrderLine[];
  amount?: number;
  currency: string;
  paymentMethodId?: string;
  status: OrderStatus;
  sagaState: SagaState;
  cancellationReason?: CancellationReason;
  /** What the outcome that cancelled the order said beyond its reason (cancellationDetailOf). */
  cancellationDetail?: CancellationDetail;
  payment?: OrderPayment;
  history: Array<{ sagaState: SagaState; at: string }>;
  /** The customer asked to cancel; the saga honours it at its next step, until the payment succeeded. */
  cancelRequestedAt?: string;
  /** The payment succeeded: from here the order can no longer be cancelled by the customer. */
  paidAt?: string;
  createdAt: string;
  updatedAt: string;
  /** Optimistic-lock counter; every stored change increments it. */
  version: number;
  /**
   * The last `sequence` the order's events used: 1 for its order.created, then moved by every save
   * with events (the repository writes it under the version guard). Absent on orders stored before
   * sequences existed.
   */
  eventSequence?: number;
}

/** Duplicate SKUs are merged into one line, never double-counted; a merged line still obeys the 999 cap. */
export function mergeLines(items: CreateOrderRequest['items']): OrderLine[] {
  const merged = new Map<string, number>();
  for (const { sku, quantity } of items) merged.set(sku, (merged.get(sku) ?? 0) + quantity);
  const lines = [...merged].map(([sku, quantity]) => ({ sku, quantity }));
  const over = lines.filter((line) => line.quantity > 999);
  if (over.length > 0) {
    throw new ValidationError(
      'The request body is invalid.',
      over.map((line) => ({
        path: 'items',
        message: `sku ${line.sku} adds up to ${line.quantity}, more than 999`,
      })),
    );
  }
  return lines;
}

export function newOrder(
  request: PlaceOrderRequest,
  orderId: string,
  now: Date,
): { order: Order; event: NewEvent } {
  const at = now.toISOString();
  const order: Order = {
    orderId,
    customerId: request.customerId,
    items: mergeLines(request.items),
    currency: request.currency ?? DEFAULT_CURRENCY,
    ...(request.paymentMethodId ? { paymentMethodId: request.paymentMethodId } : {}),
    status: 'PENDING',
    sagaState: 'STARTED',
    history: [{ sagaState: 'STARTED', at }],
    createdAt: at,
    updatedAt: at,
    version: 1,
    eventSequence: 1, // its order.created
  };
  const event = createEvent('order.created', {
    source: ORDER_SOURCE,
    subject: orderId,
    time: now,
    data: {
      orderId,
      customerId: order.customerId,
      items: order.items,
      currency: order.currency,
      status: order.status,
      sagaState: order.sagaState,
    },
  });
  return { order, event };
}

/**
 * Why the order ended, beyond its reason: a decline's code, the SKUs that were short or unknown,
 * and the outcome's sentence.
 */
export type CancellationDetail = OutcomeDetail;

/** A function error as Lambda reports it to Step Functions (the Cause of a task that threw). */
const FunctionErrorCauseSchema = z.object({ errorType: z.string(), errorMessage: z.string() });

/**
 * The detail of the failure that stopped the saga, read from its Cause, which is either a function
 * error (`{errorType, errorMessage, trace}`: the outcome error's message, its detail on the last
 * line, shared/saga.ts) or the payment step's own JSON (PaymentFailureCauseSchema). Only outcomes
 * have one: a fault's or a bug's Cause can hold internals (SDK messages, stack traces), so none of
 * it is shown. Never throws: a Cause it cannot read gives no detail, and the reason stands alone.
 */
export function cancellationDetailOf(failure: {
  Error: string;
  Cause?: string;
}): CancellationDetail | undefined {
  if (!isSagaOutcome(failure.Error) || !failure.Cause) return undefined;
  let cause: unknown;
  try {
    cause = JSON.parse(failure.Cause);
  } catch {
    return undefined;
  }
  const thrown = FunctionErrorCauseSchema.safeParse(cause);
  if (thrown.success) {
    const { text, detail } = readOutcomeMessage(thrown.data.errorMessage);
    return parseOutcomeDetail({ ...detail, message: detail?.message ?? text.trim() });
  }
  const payment = PaymentFailureCauseSchema.safeParse(cause);
  if (!payment.success || !payment.data.failureCode) return undefined;
  return parseOutcomeDetail({ declineCode: payment.data.failureCode, message: payment.data.message });
}

type StateStep = Exclude<SagaStep['step'], 'PAYMENT_SUCCEEDED'>;

const TARGET: Record<StateStep, { status?: OrderStatus; sagaState: SagaState; from: readonly SagaState[] }> =
  {
    STOCK_RESERVED: { status: 'STOCK_RESERVED', sagaState: 'STOCK_RESERVED', from: ['STARTED'] },
    PAYMENT_PENDING: { status: 'PAYMENT_PENDING', sagaState: 'PAYMENT_PENDING', from: ['STOCK_RESERVED'] },
    COMPLETED: { status: 'COMPLETED', sagaState: 'COMPLETED', from: ['PAYMENT_PENDING'] },
    COMPENSATING: { sagaState: 'COMPENSATING', from: ['STARTED', 'STOCK_RESERVED', 'PAYMENT_PENDING'] },
    COMPENSATED: { status: 'CANCELLED', sagaState: 'COMPENSATED', from: ['COMPENSATING'] },
  };

export class InvalidTransitionError extends Error {
  constructor(orderId: string, from: SagaState, step: SagaStep['step'], options?: ErrorOptions) {
    super(`Order ${orderId} cannot move from ${from} to ${step}`, options);
    this.name = 'InvalidTransitionError';
  }
}

/** The customer cancelled before the payment succeeded: the saga compensates with CUSTOMER_CANCELLED. */
export class CustomerCancelledError extends SagaOutcomeError {
  constructor(orderId: string, options?: ErrorOptions) {
    super(SagaOutcome.CustomerCancelled, `The customer cancelled order ${orderId}`, options);
  }
}

/** The customer asked too late: the order is paid, completed or cancelled. */
export interface NotCancellable {
  outcome: 'NOT_CANCELLABLE';
  message: string;
}

/** Saga states in which the customer may still cancel (and only until the payment succeeded). */
const CANCELLABLE: readonly SagaState[] = ['STARTED', 'STOCK_RESERVED', 'PAYMENT_PENDING'];

/**
 * The customer's cancellation. It is recorded on the order, and the saga honours it at its next
 * step. The order item is the point that decides between a cancel and a payment: whichever is
 * written first wins (the other write then fails its version check, rereads and sees it).
 */
export function requestCancellation(order: Order, now: Date): StepOutcome | NotCancellable {
  // Already being cancelled (by the customer or a failure): it will end CANCELLED, nothing to add.
  if (
    order.sagaState === 'COMPENSATING' ||
    (order.cancelRequestedAt && !order.paidAt && CANCELLABLE.includes(order.sagaState))
  ) {
    return { changed: false, order };
  }
  if (!CANCELLABLE.includes(order.sagaState) || order.paidAt) {
    const why =
      order.paidAt && order.sagaState === 'PAYMENT_PENDING'
        ? 'is paid'
        : `is ${order.status === 'COMPLETED' ? 'completed' : 'cancelled'}`;
    return {
      outcome: 'NOT_CANCELLABLE',
      message: `Order ${order.orderId} ${why} and can no longer be cancelled.`,
    };
  }
  const at = now.toISOString();
  return {
    changed: true,
    order: { ...order, cancelRequestedAt: at, updatedAt: at, version: order.version + 1 },
    events: [],
  };
}

/**
 * The customer's cancellation once the payments service canceled the PaymentIntent at Stripe for
 * it: Stripe decided the race, and the saga, told at once, may already be compensating (or even be
 * done) by the time this is written. The order still records when the customer asked, and the cancel
 * is not refused for a cancellation it caused itself. Otherwise it is requestCancellation.
 */
export function recordHonouredCancellation(order: Order, now: Date): StepOutcome | NotCancellable {
  const compensating =
    order.sagaState === 'COMPENSATING' ||
    (order.sagaState === 'COMPENSATED' && order.cancellationReason === 'CUSTOMER_CANCELLED');
  if (!compensating) return requestCancellation(order, now);
  if (order.cancelRequestedAt) return { changed: false, order };
  const at = now.toISOString();
  return {
    changed: true,
    order: { ...order, cancelRequestedAt: at, updatedAt: at, version: order.version + 1 },
    events: [],
  };
}

function recordPayment(
  order: Order,
  command: Extract<SagaStep, { step: 'PAYMENT_SUCCEEDED' }>,
  now: Date,
): StepOutcome {
  if (order.paidAt) return { changed: false, order };
  if (order.cancelRequestedAt) throw new CustomerCancelledError(order.orderId);
  if (order.sagaState !== 'PAYMENT_PENDING')
    throw new InvalidTransitionError(order.orderId, order.sagaState, command.step);
  const at = now.toISOString();
  return {
    changed: true,
    // The order view's `payment` changes at COMPLETED: a paid order may still be refunded (expired hold).
    order: {
      ...order,
      paidAt: at,
      updatedAt: at,
      version: order.version + 1,
    },
    events: [],
  };
}

export type StepOutcome =
  { changed: false; order: Order } | { changed: true; order: Order; events: NewEvent[] };

/**
 * Applies one saga step. Repeating a step that already happened is a no-op (`changed: false`),
 * so the state machine may retry any task.
 */
export function applySagaStep(order: Order, command: SagaStep, now: Date): StepOutcome {
  if (command.step === 'PAYMENT_SUCCEEDED') return recordPayment(order, command, now);
  if ((command.step === 'STOCK_RESERVED' || command.step === 'PAYMENT_PENDING') && order.cancelRequestedAt) {
    throw new CustomerCancelledError(order.orderId);
  }
  if (command.step === 'PAYMENT_PENDING' && command.reservation && order.sagaState === 'STARTED') {
    // Two consecutive steps, one write: stock reserved, then payment pending, with both events.
    const reserved = applySagaStep(
      order,
      { step: 'STOCK_RESERVED', orderId: order.orderId, reservation: command.reservation },
      now,
    );
    if (!reserved.changed) return reserved;
    const pending = applySagaStep({ ...reserved.order, version: order.version }, command, now);
    if (!pending.changed) return reserved;
    return { changed: true, order: pending.order, events: [...reserved.events, ...pending.events] };
  }
  const target = TARGET[command.step];
  if (order.sagaState === target.sagaState) return { changed: false, order };
  if (!target.from.includes(order.sagaState))
    throw new InvalidTransitionError(order.orderId, order.sagaState, command.step);

  const at = now.toISOString();
  const next: Order = {
    ...order,
    status: target.status ?? order.status,
    sagaState: target.sagaState,
    history: [...order.history, { sagaState: target.sagaState, at }],
    updatedAt: at,
    version: order.version + 1,
  };
  if (command.step === 'STOCK_RESERVED') {
    next.items = command.reservation.items;
    next.amount = command.reservation.amount;
    next.currency = command.reservation.currency;
  }
  if (command.step === 'PAYMENT_PENDING' && command.payment?.paymentIntentId) {
    const { paymentIntentId, status, clientSecret } = command.payment;
    next.payment = { paymentIntentId, status, ...(clientSecret ? { clientSecret } : {}) };
  }
  // Settled: the client secret has nothing left to confirm, so the order stops handing it out.
  if (command.step === 'COMPLETED') next.payment = { ...command.payment };
  // Being cancelled: the intent is about to be canceled or refunded, so the order stops offering it;
  // a cancelled order shows no payment.
  if (command.step === 'COMPENSATING') delete next.payment;
  if (command.step === 'COMPENSATING' || command.step === 'COMPENSATED') {
    const reason =
      order.cancellationReason ??
      (order.cancelRequestedAt ? 'CUSTOMER_CANCELLED' : cancellationReasonFor(command.failure.Error));
    if (reason) next.cancellationReason = reason;
    // The detail belongs to the failure that gave the reason: not to one the customer's cancel overrode.
    if (!order.cancellationDetail && reason === cancellationReasonFor(command.failure.Error)) {
      const detail = cancellationDetailOf(command.failure);
      if (detail) next.cancellationDetail = detail;
    }
  }

  const base = { source: ORDER_SOURCE, subject: order.orderId, time: now };
  const state = { orderId: order.orderId, status: next.status, sagaState: next.sagaState };
  const events: NewEvent[] = [
    createEvent('order.status_changed', {
      ...base,
      data: {
        ...state,
        previousStatus: order.status,
        previousSagaState: order.sagaState,
        ...(next.cancellationReason ? { reason: next.cancellationReason } : {}),
      },
    }),
  ];
  if (command.step === 'COMPLETED') {
    events.push(
      createEvent('order.completed', {
        ...base,
        data: {
          ...state,
          amount: next.amount ?? 0,
          currency: next.currency,
          paymentIntentId: command.payment.paymentIntentId,
        },
      }),
    );
  }
  if (command.step === 'COMPENSATED') {
    events.push(
      createEvent('order.cancelled', {
        ...base,
        data: { ...state, ...(next.cancellationReason ? { reason: next.cancellationReason } : {}) },
      }),
    );
  }
  return { changed: true, order: next, events };
}

/**
 * Whether the order may show this caller its client secret, with which anyone can pay the order:
 * only while the customer has not asked to cancel, and only to the customer or to a trusted backend
 * (IAM, or no authorizer) that checks out on the customer's behalf; never to a shop admin's token.
 */
export function showsClientSecret(order: Order, caller: Caller): boolean {
  if (order.cancelRequestedAt) return false;
  return caller.kind === 'customer' ? caller.customerId === order.customerId : caller.via !== 'admin-token';
}

/** What the payments service adds to a waiting order's view (functions/payments, customer-payment). */
export interface CheckoutView {
  clientSecret?: string;
  lastError?: PaymentLastError;
}

/** The order as the HTTP API shows it to `caller`, who may see it (isVisibleTo). */
export function orderView(order: Order, caller: Caller, checkout: CheckoutView = {}) {
  const secret = order.payment?.clientSecret ?? checkout.clientSecret;
  const payment = order.payment && {
    paymentIntentId: order.payment.paymentIntentId,
    status: order.payment.status,
    ...(secret && showsClientSecret(order, caller) ? { clientSecret: secret } : {}),
    ...(checkout.lastError && order.sagaState === 'PAYMENT_PENDING' ? { lastError: checkout.lastError } : {}),
  };
  return {
    orderId: order.orderId,
    customerId: order.customerId,
    items: order.items,
    ...(order.amount !== undefined ? { amount: order.amount } : {}),
    currency: order.currency,
    status: order.status,
    sagaState: order.sagaState,
    ...(order.cancellationReason ? { cancellationReason: order.cancellationReason } : {}),
    ...(order.cancellationDetail ? { cancellationDetail: order.cancellationDetail } : {}),
    ...(order.cancelRequestedAt ? { cancelRequestedAt: order.cancelRequestedAt } : {}),
    ...(payment ? { payment } : {}),
    history: order.history,
    createdAt: order.createdAt,
    updatedAt: order.updatedAt,
  };
}
