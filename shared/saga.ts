import { z } from 'zod';
import {
  CancellationReasonSchema,
  CurrencySchema,
  MinorUnitsSchema,
  OrderLineSchema,
  SkuSchema,
  type CancellationReason,
} from '../events/common.ts';

/*
 * The saga's contract, defined once. The state machine (stacks/saga-state-machine.ts) decides by
 * error names alone, so every name it reads is a constant here: the error classes set their `name`
 * from these, the payment step sends them with SendTaskFailure, the state machine's Retry and Catch
 * lists are built from these lists, and the order's cancellation reason is read from this map. A
 * rename is then one edit, which the compiler carries everywhere.
 *
 * The rule: faults retry, outcomes decide.
 * - An OUTCOME is a business answer (out of stock, declined, expired, cancelled): it compensates at
 *   once, with its reason.
 * - A FAULT is AWS, DynamoDB or Stripe failing for a while: it is retried with full jitter. Before any
 *   money can have moved it is retried for about two minutes and then compensates with
 *   PROCESSING_ERROR; after that it is retried for hours and then fails the execution, for an operator
 *   to redrive once the cause is fixed (docs/operations.md). It never compensates there.
 * - Anything else (a bug, data that cannot be) is deterministic: repeating it changes nothing, so it
 *   is not retried. Before money it compensates with PROCESSING_ERROR; after, it fails the execution.
 */

/** Names of the errors that are business outcomes, each with the order's cancellation reason. */
export const SagaOutcome = {
  OutOfStock: 'OutOfStockError',
  UnknownProduct: 'UnknownProductError',
  ReservationExpired: 'ReservationExpiredError',
  /** The reservation was closed (released or expired) before this step: treated as expired. */
  ReservationClosed: 'ReservationClosedError',
  PaymentDeclined: 'PaymentDeclinedError',
  /** Stripe refused the payment method outright (unknown, detached, wrong type). */
  PaymentMethodRejected: 'PaymentMethodRejectedError',
  /** The amount is below Stripe's minimum charge or above its maximum for the currency. */
  PaymentAmountRefused: 'PaymentAmountRefusedError',
  PaymentCanceled: 'PaymentCanceledError',
  PaymentTimeout: 'PaymentTimeoutError',
  CustomerCancelled: 'CustomerCancelledError',
} as const;
export type SagaOutcomeName = (typeof SagaOutcome)[keyof typeof SagaOutcome];

const OUTCOME_REASONS: Record<SagaOutcomeName, CancellationReason> = {
  [SagaOutcome.OutOfStock]: 'OUT_OF_STOCK',
  [SagaOutcome.UnknownProduct]: 'UNKNOWN_PRODUCT',
  [SagaOutcome.ReservationExpired]: 'RESERVATION_EXPIRED',
  [SagaOutcome.ReservationClosed]: 'RESERVATION_EXPIRED',
  [SagaOutcome.PaymentDeclined]: 'PAYMENT_FAILED',
  [SagaOutcome.PaymentMethodRejected]: 'PAYMENT_FAILED',
  [SagaOutcome.PaymentAmountRefused]: 'PAYMENT_FAILED',
  [SagaOutcome.PaymentCanceled]: 'PAYMENT_CANCELED',
  [SagaOutcome.PaymentTimeout]: 'PAYMENT_TIMEOUT',
  [SagaOutcome.CustomerCancelled]: 'CUSTOMER_CANCELLED',
};

/** Whether an error name is one of the business outcomes (SagaOutcome), not a fault or a bug. */
export const isSagaOutcome = (error: string): error is SagaOutcomeName =>
  Object.hasOwn(OUTCOME_REASONS, error);

/**
 * Error names the services raise for a fault worth another attempt. The services name them so that
 * the state machine can tell them from a bug, which carries only `Error`.
 */
export const SagaFault = {
  /** Stripe unreachable, rate-limited or answering 5xx; its state is read back on the next attempt. */
  PaymentProviderUnavailable: 'PaymentProviderUnavailableError',
  /** The PaymentIntent is `processing`: its outcome is not known yet. */
  PaymentProcessing: 'PaymentProcessingError',
  /** Concurrent writers kept winning an optimistic or transactional race. */
  ConcurrentChange: 'ConcurrentChangeError',
} as const;

/** Lambda's own faults as Step Functions reports them (the invocation, not the handler, failed). */
export const LAMBDA_FAULTS = [
  'Lambda.TooManyRequestsException',
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.ClientExecutionTimeoutException',
  'Lambda.Unknown',
  'Sandbox.Timedout',
] as const;

/** The AWS SDK's names for DynamoDB and Step Functions being briefly unable to serve. */
const AWS_FAULTS = [
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TransactionConflictException',
  'TransactionInProgressException',
  'InternalServerError',
  'InternalFailure',
  'ServiceUnavailable',
  'TimeoutError',
] as const;

/** Every fault a task retries, its own timeout included (all tasks are idempotent). */
export const TASK_FAULTS: readonly string[] = [
  ...LAMBDA_FAULTS,
  ...AWS_FAULTS,
  ...Object.values(SagaFault),
  'States.Timeout',
];

/** The payment wait's faults: as TASK_FAULTS, but its own timeout is the PAYMENT_TIMEOUT outcome. */
export const PAYMENT_WAIT_FAULTS: readonly string[] = TASK_FAULTS.filter((name) => name !== 'States.Timeout');

/** How long faults are retried: full jitter, capped delay (seconds); the totals are upper bounds. */
export const RETRY = {
  /** Before money: up to about two minutes, then PROCESSING_ERROR. */
  beforeMoney: { intervalSeconds: 1, backoffRate: 2, maxDelaySeconds: 30, maxAttempts: 8 },
  /** After money may have moved, and compensation: hours (on average about 3 h, at most about 6 h). */
  afterMoney: { intervalSeconds: 1, backoffRate: 2, maxDelaySeconds: 300, maxAttempts: 80 },
} as const;

/** The outcomes each step may end in; anything else is a fault or a bug. */
export const STEP_OUTCOMES = {
  MarkPaymentPending: [SagaOutcome.CustomerCancelled],
  RequestPayment: [
    SagaOutcome.PaymentDeclined,
    SagaOutcome.PaymentMethodRejected,
    SagaOutcome.PaymentCanceled,
    SagaOutcome.CustomerCancelled,
  ],
  ResolvePayment: [
    SagaOutcome.PaymentTimeout,
    SagaOutcome.PaymentDeclined,
    SagaOutcome.PaymentCanceled,
    SagaOutcome.CustomerCancelled,
  ],
  ConfirmStock: [SagaOutcome.ReservationExpired],
} as const satisfies Record<string, readonly SagaOutcomeName[]>;

/**
 * The order's cancellation reason for the error that stopped the saga: an outcome's own reason,
 * PROCESSING_ERROR for anything else (a fault that outlasted its retries, or a bug). Contract
 * reasons are accepted as names too: executions started before these names existed sent them.
 */
export function cancellationReasonFor(error: string): CancellationReason {
  if (isSagaOutcome(error)) return OUTCOME_REASONS[error];
  return CancellationReasonSchema.safeParse(error).data ?? 'PROCESSING_ERROR';
}

/**
 * What an outcome can tell the customer beyond its reason: the decline's code, the SKUs that were
 * short or unknown, and a sentence fit to show them (Stripe's, for a decline). The order records it
 * (functions/orders/order.ts, `cancellationDetail`).
 */
export const OutcomeDetailSchema = z.object({
  /** Stripe's decline code (e.g. `generic_decline`), else its error code (`card_declined`, `amount_too_small`). */
  declineCode: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,100}$/)
    .optional(),
  skus: z.array(SkuSchema).min(1).max(50).optional(),
  message: z.string().min(1).max(500).optional(),
});
export type OutcomeDetail = z.infer<typeof OutcomeDetailSchema>;

const LenientDetailSchema = z.object({
  declineCode: OutcomeDetailSchema.shape.declineCode.catch(undefined),
  skus: OutcomeDetailSchema.shape.skus.catch(undefined),
  message: OutcomeDetailSchema.shape.message.catch(undefined),
});

/**
 * Reads a detail field by field: a field that does not parse is left out, the others still count.
 * Undefined when nothing is left. Never throws.
 */
export function parseOutcomeDetail(value: unknown): OutcomeDetail | undefined {
  const detail = LenientDetailSchema.safeParse(value);
  if (!detail.success) return undefined;
  const fields = Object.entries(detail.data).filter(([, field]) => field !== undefined);
  return fields.length > 0 ? (Object.fromEntries(fields) as OutcomeDetail) : undefined;
}

/*
 * How an outcome's detail survives Lambda. A function error reaches Step Functions (and so the
 * compensation's `failure.Cause`) as `{"errorType","errorMessage","trace"}` only: the Node.js
 * runtime serializes the error's name, message and stack and nothing else, so a property such as
 * `skus` is lost. The detail therefore travels in the message, as its last line: this mark and the
 * detail as JSON. JSON.stringify escapes every line break, so that line is always the whole detail,
 * whatever the sentence before it holds. The local runtime renders errors the same way.
 */
const DETAIL_MARK = 'outcome-detail: ';

/**
 * An outcome's `errorMessage` read back: the sentence, and the detail its last line carries (only
 * what OutcomeDetailSchema accepts; a message without one, or with one that does not parse, has none).
 */
export function readOutcomeMessage(errorMessage: string): { text: string; detail?: OutcomeDetail } {
  const lineBreak = errorMessage.lastIndexOf('\n');
  const last = errorMessage.slice(lineBreak + 1);
  if (lineBreak < 0 || !last.startsWith(DETAIL_MARK)) return { text: errorMessage };
  const text = errorMessage.slice(0, lineBreak);
  let json: unknown;
  try {
    json = JSON.parse(last.slice(DETAIL_MARK.length));
  } catch {
    return { text };
  }
  const detail = parseOutcomeDetail(json);
  return detail ? { text, detail } : { text };
}

/**
 * Base of the outcome errors: `name` is one of SagaOutcome, so the state machine can catch it. A
 * `detail` is appended to the message (see DETAIL_MARK), where it survives Lambda's serialization.
 */
export class SagaOutcomeError extends Error {
  readonly detail: OutcomeDetail | undefined;
  constructor(name: SagaOutcomeName, message: string, options?: ErrorOptions & { detail?: OutcomeDetail }) {
    const { detail, ...errorOptions } = options ?? {};
    super(detail ? `${message}\n${DETAIL_MARK}${JSON.stringify(detail)}` : message, errorOptions);
    this.name = name;
    this.detail = detail;
  }
}

/** Base of the named faults (SagaFault): the state machine retries them. */
export class SagaFaultError extends Error {
  constructor(name: (typeof SagaFault)[keyof typeof SagaFault], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = name;
  }
}

/** Concurrent writers kept winning a conditional or transactional race: another attempt will do. */
export class ConcurrentChangeError extends SagaFaultError {
  constructor(message: string, options?: ErrorOptions) {
    super(SagaFault.ConcurrentChange, message, options);
  }
}

/*
 * The task commands: what each saga task receives, by state name (TASK_COMMANDS), each task
 * handler parsing its event with its schema. The stack test holds every Task state's Parameters
 * against these, so a field renamed on either side fails there, not in production.
 */

export const ReserveCommandSchema = z.object({
  orderId: z.string().min(1),
  currency: CurrencySchema,
  items: z
    .array(z.object({ sku: SkuSchema, quantity: z.number().int().min(1).max(999) }))
    .min(1)
    .max(50),
});
export type ReserveCommand = z.infer<typeof ReserveCommandSchema>;

/** ConfirmStock, ReleaseStock. */
export const OrderRefSchema = z.object({ orderId: z.string().min(1) });

export const CreatePaymentCommandSchema = z.object({
  orderId: z.string().min(1),
  customerId: z.string().nullish(),
  // Stripe's own limits are checked by the step, which refuses an amount outside them as an outcome.
  amount: MinorUnitsSchema,
  currency: CurrencySchema,
});
export type CreatePaymentCommand = z.infer<typeof CreatePaymentCommandSchema>;

export const RequestPaymentCommandSchema = CreatePaymentCommandSchema.extend({
  paymentMethodId: z.string().nullish(),
  taskToken: z.string().min(1),
});
export type RequestPaymentCommand = z.infer<typeof RequestPaymentCommandSchema>;

export const CancelPaymentCommandSchema = z.object({
  orderId: z.string().min(1),
  failure: z.object({ Error: z.string(), Cause: z.string().optional() }).optional(),
  /** The order's cancellation reason, when it has one; it wins over the failure's. */
  cancellationReason: z.string().nullish(),
});
export type CancelPaymentCommand = z.infer<typeof CancelPaymentCommandSchema>;

/**
 * The decline of the customer's last attempt to pay, as Stripe's `last_payment_error` reports it:
 * `code` (e.g. `card_declined`), the issuer's `declineCode` when there is one (e.g.
 * `generic_decline`, `insufficient_funds`) and Stripe's `message`, fit to show the customer. The
 * payments service answers it to the orders service (functions/payments/customer-payment.ts) while
 * the customer may still try another card.
 */
export const PaymentLastErrorSchema = z.object({
  code: z.string().min(1),
  declineCode: z.string().min(1).optional(),
  message: z.string().min(1),
});
export type PaymentLastError = z.infer<typeof PaymentLastErrorSchema>;

/**
 * The Cause the payment step sends with SendTaskFailure when the payment closed without money
 * (functions/payments/payments.ts, notifySaga): a decline's `failureCode` (Stripe's decline code,
 * else its error code) and Stripe's `message`. Unlike a function error's Cause, it is this JSON.
 */
export const PaymentFailureCauseSchema = z.object({
  paymentIntentId: z.string().nullish(),
  failureCode: z.string().nullish(),
  message: z.string().nullish(),
  cancellationReason: z.string().nullish(),
});
export type PaymentFailureCause = z.infer<typeof PaymentFailureCauseSchema>;

export const ResolvePaymentCommandSchema = z.object({ orderId: z.string().min(1) });
export type ResolvePaymentCommand = z.infer<typeof ResolvePaymentCommandSchema>;

const FailureSchema = z.object({ Error: z.string(), Cause: z.string().optional() });

/** The commands the saga sends to the order service, one per step. */
export const SagaStepSchema = z.discriminatedUnion('step', [
  z.object({
    step: z.literal('STOCK_RESERVED'),
    orderId: z.string(),
    reservation: z.object({
      amount: MinorUnitsSchema,
      currency: CurrencySchema,
      items: z.array(OrderLineSchema.required({ unitPrice: true })),
    }),
  }),
  z.object({
    step: z.literal('PAYMENT_PENDING'),
    orderId: z.string(),
    // The reservation: this one write then records both steps (stock reserved, payment pending).
    // Optional: executions started before the two were merged sent it with STOCK_RESERVED.
    reservation: z
      .object({
        amount: MinorUnitsSchema,
        currency: CurrencySchema,
        items: z.array(OrderLineSchema.required({ unitPrice: true })),
      })
      .optional(),
    // What CreatePayment answered. Optional: an execution started before that step existed has none.
    payment: z
      .object({
        paymentIntentId: z.string().min(1).nullable(),
        status: z.string().min(1),
        // Executions started before the secret left the saga's state still send it.
        clientSecret: z.string().min(1).nullish(),
      })
      .optional(),
  }),
  z.object({ step: z.literal('PAYMENT_SUCCEEDED'), orderId: z.string() }),
  z.object({
    step: z.literal('COMPLETED'),
    orderId: z.string(),
    payment: z.object({ paymentIntentId: z.string(), status: z.string() }),
  }),
  z.object({ step: z.literal('COMPENSATING'), orderId: z.string(), failure: FailureSchema }),
  z.object({ step: z.literal('COMPENSATED'), orderId: z.string(), failure: FailureSchema }),
]);
export type SagaStep = z.infer<typeof SagaStepSchema>;

/** The command schema of every saga task, by state name. */
export const TASK_COMMANDS = {
  ReserveStock: ReserveCommandSchema,
  CreatePayment: CreatePaymentCommandSchema,
  MarkPaymentPending: SagaStepSchema,
  RequestPayment: RequestPaymentCommandSchema,
  ResolvePayment: ResolvePaymentCommandSchema,
  ConfirmStock: OrderRefSchema,
  CompleteOrder: SagaStepSchema,
  MarkCompensating: SagaStepSchema,
  ReleaseStock: OrderRefSchema,
  CancelPayment: CancelPaymentCommandSchema,
  MarkCompensated: SagaStepSchema,
} as const;
