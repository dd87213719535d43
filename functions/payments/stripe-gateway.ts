import Stripe from 'stripe';
import { InvalidStripeEventError } from './payment.ts';

/** What the payment service needs from Stripe, in its own words. */
export interface PaymentGateway {
  /** Creates the order's PaymentIntent, unconfirmed: nothing is charged until it is confirmed. */
  createIntent(request: {
    orderId: string;
    amount: number;
    currency: string;
  }): Promise<{ id: string; status: string; clientSecret?: string }>;
  /** Confirms with the customer's payment method; a decline is returned, not thrown. */
  confirmIntent(
    orderId: string,
    paymentIntentId: string,
    paymentMethodId: string,
  ): Promise<{ status: string; failureCode?: string; failureMessage?: string }>;
  /** Cancels the intent; reports `succeeded` instead when it turns out to be paid already. */
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
  verifyWebhook(rawBody: string, signatureHeader: string | undefined): Stripe.Event;
}

export class WebhookSignatureError extends Error {
  readonly code: 'MISSING_SIGNATURE' | 'INVALID_SIGNATURE';
  constructor(code: 'MISSING_SIGNATURE' | 'INVALID_SIGNATURE', message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'WebhookSignatureError';
    this.code = code;
  }
}

/** Stripe refused the order's payment method outright (unknown, detached, wrong type). */
export class PaymentMethodRejectedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PaymentMethodRejectedError';
  }
}

/**
 * Stripe could not be reached, or turned the request away before running it (rate limit): worth
 * another attempt with the same idempotency key. A 500 is not among them: Stripe stores it under the
 * key and would answer every retry the same. The SDK's own errors leave `name` as 'Error', which
 * retry rules cannot tell apart; this one is named.
 */
export class PaymentProviderUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PaymentProviderUnavailableError';
  }
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

/** Runs a Stripe call, naming the failures that are worth retrying. */
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

  return {
    async createIntent({ orderId, amount, currency }) {
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
          // One intent per order, however often the saga step is retried.
          { idempotencyKey: `order-${orderId}-payment-intent` },
        ),
      );
      return {
        id: intent.id,
        status: intent.status,
        ...(intent.client_secret ? { clientSecret: intent.client_secret } : {}),
      };
    },

    async confirmIntent(orderId, paymentIntentId, paymentMethodId) {
      try {
        const intent = await call(() =>
          stripe.paymentIntents.confirm(
            paymentIntentId,
            { payment_method: paymentMethodId },
            { idempotencyKey: `order-${orderId}-confirm` },
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
    },

    async cancelIntent(orderId, paymentIntentId) {
      try {
        await call(() =>
          stripe.paymentIntents.cancel(paymentIntentId, {}, { idempotencyKey: `order-${orderId}-cancel` }),
        );
        return { status: 'canceled' };
      } catch (error) {
        if (
          !(error instanceof Stripe.errors.StripeInvalidRequestError) ||
          error.code !== 'payment_intent_unexpected_state'
        ) {
          throw error;
        }
        const intent = await call(() => stripe.paymentIntents.retrieve(paymentIntentId));
        if (intent.status === 'succeeded') return { status: 'succeeded' };
        if (intent.status === 'canceled') return { status: 'canceled' };
        throw error;
      }
    },

    async refund(orderId, paymentIntentId) {
      try {
        const refund = await call(() =>
          stripe.refunds.create(
            { payment_intent: paymentIntentId, metadata: { orderId } },
            { idempotencyKey: `order-${orderId}-refund-${paymentIntentId}` },
          ),
        );
        return { refundId: refund.id };
      } catch (error) {
        if (
          !(error instanceof Stripe.errors.StripeInvalidRequestError) ||
          error.code !== 'charge_already_refunded'
        ) {
          throw error;
        }
        // Newest first; a failed or canceled refund gave nothing back, so it does not count.
        const { data } = await call(() =>
          stripe.refunds.list({ payment_intent: paymentIntentId, limit: 100 }),
        );
        const existing = data.find((refund) => refund.status !== 'failed' && refund.status !== 'canceled');
        if (!existing) throw error;
        return { refundId: existing.id };
      }
    },

    verifyWebhook(rawBody, signatureHeader) {
      const secrets = options.webhookSecrets ?? [];
      if (secrets.length === 0) throw new Error('this gateway was built without a webhook secret');
      if (!signatureHeader)
        throw new WebhookSignatureError('MISSING_SIGNATURE', 'The Stripe-Signature header is missing.');
      // The SDK only refuses old timestamps; a signature dated in the future is refused too.
      const tolerance = options.toleranceSeconds ?? 300;
      const timestamp = signatureTimestamp(signatureHeader);
      if (timestamp !== undefined && timestamp - Date.now() / 1000 > tolerance) {
        throw new WebhookSignatureError(
          'INVALID_SIGNATURE',
          'The Stripe-Signature timestamp is in the future.',
        );
      }
      // The SDK accepts a header when any of its v1 signatures matches the secret (Stripe signs with
      // every active secret while one is rolled); during a rotation every configured secret is tried.
      const failures: unknown[] = [];
      for (const secret of secrets) {
        try {
          return stripe.webhooks.constructEvent(rawBody, signatureHeader, secret, tolerance);
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
      const stale = failures.some((error) => error instanceof Error && /tolerance/i.test(error.message));
      throw new WebhookSignatureError(
        'INVALID_SIGNATURE',
        stale
          ? `The Stripe-Signature timestamp is more than ${tolerance} s old.`
          : 'The Stripe-Signature does not match this body.',
        { cause: new AggregateError(failures) },
      );
    },
  };
}
