/**
 * A local stand-in for the Stripe API in test mode, for the subset this project uses: PaymentIntents
 * (create, retrieve, update, confirm, cancel, list), Refunds (create, retrieve, list), idempotency keys
 * and signed webhooks with retries. The real `stripe` SDK works against it unchanged:
 * `new Stripe('sk_test_…', { host: '127.0.0.1', port, protocol: 'http' })`. A publishable key
 * (`pk_test_…`) may retrieve or confirm a PaymentIntent with its `client_secret`, as Stripe.js does in
 * the customer's browser; the answer is the full object, not the smaller one Stripe gives such a key.
 *
 * Lists (`GET /v1/payment_intents`, `GET /v1/refunds`) are newest first, in Stripe's list shape, paged
 * by `limit` (1–100, default 10) and `starting_after` or `ending_before`, so the SDK's auto-pagination
 * works. PaymentIntent amounts must lie within Stripe's limits (functions/payments/stripe-limits.ts):
 * at least the currency's minimum charge and at most 99999999, else `400 amount_too_small` or
 * `amount_too_large` on `amount`.
 *
 * Faults (option `faults`, `LOCAL_FAULTS`; faults.ts), on requests made with a secret key only (never on
 * a publishable key's, the browser's):
 * - `stripe.error`: `500 api_error`, and nothing was done. `stripe.lost-response`: the work is done
 *   (state changed, webhooks queued), then the same 500. As Stripe does, a 500 answered to a request
 *   with an `Idempotency-Key` is stored under the key and replayed for every later request with that
 *   key (with `Stripe-Should-Retry: false`): retrying the key never helps, reading the state back does.
 *   Either may hit any request, GETs included (they carry no key, so nothing is stored).
 * - `stripe.slow=MS`: the work is done at once, the answer leaves MS milliseconds later.
 * - `webhook.delay=SECONDS`: each event's first delivery attempt starts SECONDS after it was queued;
 *   order per object is kept. `webhook.drop=RATE`: an event is never delivered (decided once per event);
 *   the objects still show the truth.
 *
 * What it does NOT mirror:
 * - Other resources and endpoints: no Charges, Customers, PaymentMethods, Events or Balance API, no
 *   search endpoints, no list endpoints but PaymentIntents and Refunds (by `payment_intent` or
 *   `charge`); no `created` or `customer` filters. Charge and PaymentMethod objects exist only as ids
 *   (and as `charge.refunded` event payloads, and `last_payment_error.payment_method`).
 * - Payment methods: only the test tokens pm_card_visa, pm_card_chargeDeclined,
 *   pm_card_chargeDeclinedInsufficientFunds, pm_card_authenticationRequired and pm_card_refundFail
 *   (each use creates a new pm_… id, as Stripe does). No raw card numbers, no other payment method
 *   types, no Radar.
 * - No 3-D Secure completion: a PaymentIntent in `requires_action` stays there until it is confirmed
 *   with another payment method or canceled.
 * - `capture_method` is ignored (always automatic): no manual capture, no `requires_capture`, no
 *   `processing` state, no asynchronous payment methods.
 * - Refunds are created `succeeded`, at once, and never `pending` or `canceled`. A refund of a
 *   pm_card_refundFail charge fails right after it was created (Stripe: some time later): its
 *   `status` becomes `failed` (`failure_reason` `expired_or_canceled_card`), the charge counts it
 *   no more, and `refund.failed` is sent; no `refund.updated` or `charge.refund.updated`.
 * - Minimum amounts are those of Stripe's table for the charge's own currency, as if the account
 *   settled in every currency: no conversion to a settlement currency, so a currency the table does not
 *   list has no minimum but 1. Unknown parameters are ignored, not rejected; `expand` is ignored
 *   (related objects stay ids).
 * - Webhooks: one endpoint receiving every event type; only payment_intent.created / succeeded /
 *   payment_failed / requires_action / canceled, charge.refunded, refund.created and refund.failed are sent (no
 *   charge.succeeded / charge.failed); no `previous_attributes`; `api_version` is fixed.
 * - Webhook delivery is kinder than Stripe's: in order per object, each event delivered once when
 *   answered 2xx, retried on a compressed schedule (by default 8 attempts, 1 s doubling, about two
 *   minutes; Stripe retries for up to three days). Stripe promises neither order nor a single
 *   delivery; tests that need duplicates or reordering sign their own events with the SDK
 *   (`stripe.webhooks.generateTestHeaderString`). A rolled secret is mirrored: with several secrets
 *   (comma-separated), every event carries one `v1` signature per secret, as Stripe sends it until
 *   the old secret expires; the expiry itself is not.
 * - Idempotency keys are scoped to the emulator, not to an account or API key; requests are handled one
 *   at a time, so there is no 409 for concurrent use of a key.
 * - Everything is in memory and lost on close. No livemode, no Connect (Stripe-Account), no rate limits.
 */
import { noFaults, type FaultInjector } from '../faults.ts';
import { listen } from '../http-server.ts';
import { StripeApi } from './api.ts';
import { DEFAULT_RETRY, WebhookDispatcher, type WebhookRetry } from './webhooks.ts';

export interface StripeEmulatorOptions {
  /** 0 or undefined: a free port. */
  port?: number;
  /** Address to bind; default 127.0.0.1. Only a LocalStack run, whose Lambdas live in containers, needs another. */
  host?: string;
  /**
   * The endpoint secret (whsec_…) webhooks are signed with; several, comma-separated, stand for a
   * secret being rolled: every event then carries one `v1` signature per secret, as Stripe sends it.
   */
  webhookSecret: string;
  /** Where events are POSTed; may be set later with setWebhookUrl. Until then events queue. */
  webhookUrl?: string;
  /** Default { maxAttempts: 8, baseDelayMs: 1000 }; the delay doubles after each failed attempt. */
  webhookRetry?: WebhookRetry;
  /** The stripe.* and webhook.* faults to inject (see the top comment); default none. */
  faults?: FaultInjector;
}

export interface StripeEmulator {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  setWebhookUrl(url: string): void;
  /**
   * Resolves when no webhook delivery is pending or in flight, or once the emulator is closed. Events
   * queued while no webhook URL is set count as pending.
   */
  idle(): Promise<void>;
  /** Stops the server and cancels pending deliveries and retries; leaves no timers behind. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

export async function startStripeEmulator(options: StripeEmulatorOptions): Promise<StripeEmulator> {
  const secrets = (options.webhookSecret ?? '')
    .split(',')
    .map((secret) => secret.trim())
    .filter((secret) => secret !== '');
  if (secrets.length === 0) throw new Error('startStripeEmulator: webhookSecret is required');
  const retry = options.webhookRetry ?? DEFAULT_RETRY;
  if (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1 || !(retry.baseDelayMs >= 0)) {
    throw new Error(
      'startStripeEmulator: webhookRetry needs an integer maxAttempts >= 1 and baseDelayMs >= 0',
    );
  }
  const faults = options.faults ?? noFaults();
  const webhooks = new WebhookDispatcher(secrets, retry, faults);
  if (options.webhookUrl) webhooks.setUrl(options.webhookUrl);
  const api = new StripeApi(webhooks, faults);
  const host = options.host ?? HOST;
  const server = await listen((req, res) => void api.handle(req, res), { host, port: options.port ?? 0 });
  let closing: Promise<void> | undefined;
  const shutdown = async () => {
    webhooks.close();
    api.close();
    await server.close();
  };
  return {
    // The host as given, 0.0.0.0 included (http-server's url would name 127.0.0.1 instead).
    url: `http://${host}:${server.port}`,
    host,
    port: server.port,
    setWebhookUrl: (url) => webhooks.setUrl(url),
    idle: () => webhooks.idle(),
    close: () => (closing ??= shutdown()),
  };
}
