import Stripe from 'stripe';
import { randomUUID } from 'node:crypto';
import { SagaFault, SagaFaultError, SagaOutcome, SagaOutcomeError } from '../../shared/saga.ts';
import { InvalidStripeEventError } from './payment.ts';

/** What the payment service needs from Stripe, in its own words. */
export interface PaymentGateway {
  /** Creates the order's PaymentIntent, unconfirmed: nothing is charged until it is confirmed. */
  createIntent(request: {
    orderId: string;
    amount: number;
    currency: string;
    /** Which key to create under: the next one after a 5xx spent the previous (default 0). */
    attempt?: number;
  }): Promise<{ id: string; status: string; clientSecret?: string }>;
  /** Confirms with the customer's payment method; a decline is returned, not thrown. */
  confirmIntent(
    orderId: string,
    paymentIntentId: string,
    paymentMethodId: string,
  ): Promise<{ status: string; failureCode?: string; failureMessage?: string }>;
  /**
   * Cancels the intent; reports `succeeded` instead when it turns out to be paid already. A 5xx is
   * read back from the intent; `processing` throws PaymentProcessingError (ask again later).
   */
  cancelIntent(orderId: string, paymentIntentId: string): Promise<{ status: 'canceled' | 'succeeded' }>;
  /**
   * Refunds the intent's charge in full, once per PaymentIntent (idempotency key
   * `order-<orderId>-refund-<paymentIntentId>`). A charge that is already refunded (by hand in the
   * Dashboard, or under this key more than 24 h ago, when Stripe has forgotten the key) counts as
   * done: the id of the refund Stripe holds for it is returned.
   */
  refund(orderId: string, paymentIntentId: string): Promise<{ refundId: string }>;
  /**
   * Verifies the signature over the raw body with any of the endpoint's secrets; throws
   * WebhookSignatureError, or InvalidStripeEventError for a verified body that is not JSON.
   */
  verifyWebhook(rawBody: string, signatureHeader: string | undefined): Stripe.Event | Promise<Stripe.Event>;
}

export class WebhookSignatureError extends Error {
  readonly code: 'MISSING_SIGNATURE' | 'INVALID_SIGNATURE';
  constructor(code: 'MISSING_SIGNATURE' | 'INVALID_SIGNATURE', message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'WebhookSignatureError';
    this.code = code;
  }
}

/** Stripe refused the order's payment method outright (unknown, detached, wrong type): an outcome. */
export class PaymentMethodRejectedError extends SagaOutcomeError {
  constructor(message: string, options?: ErrorOptions) {
    super(SagaOutcome.PaymentMethodRejected, message, options);
  }
}

/**
 * Stripe could not be reached, turned the request away (rate limit), or answered 5xx: worth another
 * attempt. A 5xx is stored by Stripe under the request's idempotency key and answered to every retry
 * with that key, so the gateway reads the state back instead of repeating the key; `keySpent` says
 * that a create's key now answers only this error, and the next attempt needs another one.
 */
export class PaymentProviderUnavailableError extends SagaFaultError {
  readonly keySpent: boolean;
  constructor(message: string, options?: ErrorOptions & { keySpent?: boolean }) {
    super(SagaFault.PaymentProviderUnavailable, message, options);
    this.keySpent = options?.keySpent ?? false;
  }
}

/** The PaymentIntent is `processing`: neither paid nor cancelable yet, so the step asks again later. */
export class PaymentProcessingError extends SagaFaultError {
  constructor(paymentIntentId: string, options?: ErrorOptions) {
    super(SagaFault.PaymentProcessing, `PaymentIntent ${paymentIntentId} is still processing`, options);
  }
}

/** Stripe answered 5xx (api_error): the request may or may not have taken effect. */
function isServerError(error: unknown): boolean {
  return error instanceof Stripe.errors.StripeError && (error.statusCode ?? 0) >= 500;
}

/** The header's timestamp read as the SDK reads it (the last `t=`); undefined when there is none. */
function signatureTimestamp(header: string): number | undefined {
  let timestamp: number | undefined;
  for (const item of header.split(',')) {
    const [key, value] = item.split('=');
    if (key === 't') timestamp = Number.parseInt(value ?? '', 10);
  }
  return timestamp !== undefined && Number.isFinite(timestamp) ? timestamp : undefined;
}

/**
 * Runs a Stripe call, naming the failures that are worth retrying. A connection error or a rate limit
 * stored nothing under the key; a 5xx is passed on as it is, for the caller to read the state back.
 */
async function call<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (error) {
    if (
      error instanceof Stripe.errors.StripeConnectionError ||
      error instanceof Stripe.errors.StripeRateLimitError
    ) {
      throw new PaymentProviderUnavailableError(error.message, { cause: error });
    }
    throw error;
  }
}

/** A 5xx becomes the named fault; `keySpent` when Stripe now answers the key only with it. */
function unavailable(error: unknown, keySpent = false): never {
  if (isServerError(error)) {
    throw new PaymentProviderUnavailableError((error as Error).message, { cause: error, keySpent });
  }
  throw error;
}

export interface StripeGatewayOptions {
  apiKey: string;
  /** Endpoint secrets (whsec_…) a webhook may be signed with: one, or two while one is rolled. */
  webhookSecrets?: readonly string[];
  /** Another API base (the local emulator); unset means Stripe itself. */
  apiUrl?: string;
  /** Signature timestamp tolerance, seconds. */
  toleranceSeconds?: number;
}

export function stripeGateway(options: StripeGatewayOptions): PaymentGateway {
  const url = options.apiUrl ? new URL(options.apiUrl) : undefined;
  const stripe = new Stripe(options.apiKey, {
    // No SDK retries: the saga retries the whole step with the same idempotency keys. At most three
    // calls a step (cancel, retrieve, refund) × 5 s stays well inside the tasks' 30 s.
    maxNetworkRetries: 0,
    timeout: 5_000,
    ...(url
      ? {
          host: url.hostname,
          port: Number(url.port || 80),
          protocol: url.protocol.replace(':', '') as 'http' | 'https',
        }
      : {}),
  });

  /** Cancels without a key: an intent's state makes a cancel happen once, whatever is repeated. */
  const cancelOnce = async (paymentIntentId: string, idempotencyKey?: string) => {
    try {
      await call(() =>
        stripe.paymentIntents.cancel(paymentIntentId, {}, idempotencyKey ? { idempotencyKey } : {}),
      );
      return { status: 'canceled' as const };
    } catch (error) {
      const unexpected =
        error instanceof Stripe.errors.StripeInvalidRequestError &&
        error.code === 'payment_intent_unexpected_state';
      if (!unexpected && !isServerError(error)) throw error;
      // Already canceled, just paid, or Stripe failed: what it holds decides.
      const intent = await call(() => stripe.paymentIntents.retrieve(paymentIntentId)).catch(unavailable);
      if (intent.status === 'succeeded') return { status: 'succeeded' as const };
      if (intent.status === 'canceled') return { status: 'canceled' as const };
      if (intent.status === 'processing') throw new PaymentProcessingError(paymentIntentId, { cause: error });
      // Still cancelable: the 5xx did nothing. Cancel again, keyless; a 5xx again is retried by the step.
      if (idempotencyKey) return cancelOnce(paymentIntentId);
      return unavailable(error);
    }
  };

  const createRefund = (orderId: string, paymentIntentId: string, idempotencyKey: string) =>
    call(() =>
      stripe.refunds.create({ payment_intent: paymentIntentId, metadata: { orderId } }, { idempotencyKey }),
    );

  /** The refund Stripe holds for the intent (newest first); a failed or canceled one gave nothing back. */
  const existingRefund = async (paymentIntentId: string) => {
    const { data } = await call(() =>
      stripe.refunds.list({ payment_intent: paymentIntentId, limit: 100 }),
    ).catch(unavailable);
    return data.find((refund) => refund.status !== 'failed' && refund.status !== 'canceled');
  };

  return {
    async createIntent({ orderId, amount, currency, attempt = 0 }) {
      // One intent per order and attempt, however often the saga step is retried. A 5xx spends the
      // key (Stripe answers it with that 5xx from then on), and the payment moves to the next attempt.
      const idempotencyKey = `order-${orderId}-payment-intent${attempt > 0 ? `-${attempt}` : ''}`;
      const intent = await call(() =>
        stripe.paymentIntents.create(
          {
            amount,
            currency,
            metadata: { orderId },
            // Cards only: the saga waits PAYMENT_TIMEOUT_SECONDS for an outcome and then cancels, which
            // a bank debit that stays `processing` for days would outlive (its cancel is refused).
            allowed_payment_method_types: ['card'],
          },
          { idempotencyKey },
        ),
      ).catch((error: unknown) => unavailable(error, true));
      return {
        id: intent.id,
        status: intent.status,
        ...(intent.client_secret ? { clientSecret: intent.client_secret } : {}),
      };
    },

    async confirmIntent(orderId, paymentIntentId, paymentMethodId) {
      /** One confirm; Stripe's answers that are outcomes (a decline, already confirmed) are returned. */
      const confirm = async (idempotencyKey: string) => {
        try {
          const intent = await call(() =>
            stripe.paymentIntents.confirm(
              paymentIntentId,
              { payment_method: paymentMethodId },
              { idempotencyKey },
            ),
          );
          return { status: intent.status };
        } catch (error) {
          if (error instanceof Stripe.errors.StripeInvalidRequestError && error.param === 'payment_method') {
            throw new PaymentMethodRejectedError(error.message, { cause: error });
          }
          if (error instanceof Stripe.errors.StripeCardError && error.payment_intent) {
            // A decline is an outcome: Stripe reports it again with payment_intent.payment_failed.
            return {
              status: error.payment_intent.status,
              failureCode: error.decline_code ?? error.code ?? 'card_declined',
              failureMessage: error.message,
            };
          }
          if (
            error instanceof Stripe.errors.StripeInvalidRequestError &&
            error.code === 'payment_intent_unexpected_state' &&
            error.payment_intent
          ) {
            // The customer confirmed it first (Stripe.js, the order's client secret), or it was
            // canceled: not this step's failure. The webhook reports how it ends.
            return { status: error.payment_intent.status };
          }
          throw error;
        }
      };
      try {
        return await confirm(`order-${orderId}-confirm`);
      } catch (error) {
        if (!isServerError(error)) throw error;
        // A 5xx, stored under the key: whether the confirm took effect is read back from the intent.
        const intent = await call(() => stripe.paymentIntents.retrieve(paymentIntentId)).catch(unavailable);
        const declined = intent.last_payment_error;
        if (declined) {
          return {
            status: intent.status,
            failureCode: declined.decline_code ?? declined.code ?? 'card_declined',
            failureMessage: declined.message ?? 'The payment failed.',
          };
        }
        if (intent.status !== 'requires_payment_method' && intent.status !== 'requires_confirmation') {
          return { status: intent.status };
        }
        // Not confirmed: confirm again under a fresh key (the intent itself charges at most once).
        return confirm(`order-${orderId}-confirm-${randomUUID()}`).catch(unavailable);
      }
    },

    async cancelIntent(orderId, paymentIntentId) {
      return cancelOnce(paymentIntentId, `order-${orderId}-cancel`);
    },

    async refund(orderId, paymentIntentId) {
      const key = `order-${orderId}-refund-${paymentIntentId}`;
      try {
        return { refundId: (await createRefund(orderId, paymentIntentId, key)).id };
      } catch (error) {
        const alreadyRefunded =
          error instanceof Stripe.errors.StripeInvalidRequestError &&
          error.code === 'charge_already_refunded';
        if (!alreadyRefunded && !isServerError(error)) throw error;
        // Refunded already (by hand, under this key more than 24 h ago, or by the request that
        // answered 5xx): the refund Stripe holds counts.
        const existing = await existingRefund(paymentIntentId);
        if (existing) return { refundId: existing.id };
        if (alreadyRefunded) throw error;
        // The 5xx refunded nothing: refund under a fresh key (a charge is refunded in full at most once).
        try {
          return { refundId: (await createRefund(orderId, paymentIntentId, `${key}-${randomUUID()}`)).id };
        } catch (retryError) {
          return unavailable(retryError);
        }
      }
    },

    verifyWebhook(rawBody, signatureHeader) {
      const secrets = options.webhookSecrets ?? [];
      if (secrets.length === 0) throw new Error('this gateway was built without a webhook secret');
      return verifyStripeWebhook(rawBody, signatureHeader, secrets, options.toleranceSeconds);
    },
  };
}

const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * What can be told of a Stripe-Signature header without any secret: it is there, it is dated, that
 * date is within the tolerance (either way: the SDK only refuses old ones), and it carries a `v1`
 * signature. The webhook checks this before it fetches its secret, so that a flood of unsigned
 * requests costs no Secrets Manager call. Throws WebhookSignatureError.
 */
export function checkSignatureHeader(
  signatureHeader: string | undefined,
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
  nowMs = Date.now(),
): asserts signatureHeader is string {
  if (!signatureHeader)
    throw new WebhookSignatureError('MISSING_SIGNATURE', 'The Stripe-Signature header is missing.');
  const timestamp = signatureTimestamp(signatureHeader);
  const signed = signatureHeader.split(',').some((item) => /^v1=[0-9a-f]+$/i.test(item.trim()));
  if (timestamp === undefined || !signed)
    throw new WebhookSignatureError(
      'INVALID_SIGNATURE',
      'The Stripe-Signature header is not t=<unix time>,v1=<signature>.',
    );
  const age = nowMs / 1000 - timestamp;
  if (-age > toleranceSeconds)
    throw new WebhookSignatureError('INVALID_SIGNATURE', 'The Stripe-Signature timestamp is in the future.');
  if (age > toleranceSeconds)
    throw new WebhookSignatureError(
      'INVALID_SIGNATURE',
      `The Stripe-Signature timestamp is more than ${toleranceSeconds} s old.`,
    );
}

/**
 * Verifies the signature over the raw body with any of the endpoint's secrets (Stripe signs with
 * every active secret while one is rolled, so during a rotation each is tried); throws
 * WebhookSignatureError, or InvalidStripeEventError for a verified body that is not an event.
 */
export function verifyStripeWebhook(
  rawBody: string,
  signatureHeader: string | undefined,
  secrets: readonly string[],
  toleranceSeconds = DEFAULT_TOLERANCE_SECONDS,
): Stripe.Event {
  checkSignatureHeader(signatureHeader, toleranceSeconds);
  const failures: unknown[] = [];
  for (const secret of secrets) {
    try {
      return Stripe.webhooks.constructEvent(rawBody, signatureHeader, secret, toleranceSeconds);
    } catch (error) {
      if (!(error instanceof Stripe.errors.StripeSignatureVerificationError)) {
        // Verified, but the SDK could not read it: not JSON, or a thin (v2) event notification.
        throw error instanceof SyntaxError
          ? new InvalidStripeEventError('INVALID_JSON', 'The webhook body is not JSON.', { cause: error })
          : new InvalidStripeEventError('VALIDATION_FAILED', 'The webhook body is not a Stripe event.', {
              cause: error,
            });
      }
      failures.push(error);
    }
  }
  throw new WebhookSignatureError('INVALID_SIGNATURE', 'The Stripe-Signature does not match this body.', {
    cause: new AggregateError(failures),
  });
}
