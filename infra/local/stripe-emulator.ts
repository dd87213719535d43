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
import { createHmac, randomBytes } from 'node:crypto';
import {
  createServer,
  request as httpRequest,
  type ClientRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { STRIPE_MAXIMUM_CHARGE, stripeMinimumCharge } from '../../functions/payments/stripe-limits.ts';
import { noFaults, type FaultContext, type FaultInjector } from './faults.ts';

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
  webhookRetry?: { maxAttempts: number; baseDelayMs: number };
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
const API_VERSION = '2026-10-28.endive';
const DEFAULT_RETRY = { maxAttempts: 8, baseDelayMs: 1000 };
const WEBHOOK_TIMEOUT_MS = 30_000;
const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const MAX_BODY_BYTES = 1024 * 1024;
const MAX_AMOUNT = STRIPE_MAXIMUM_CHARGE;

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
  const server = createServer((req, res) => void api.handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  const shutdown = async () => {
    webhooks.close();
    api.close();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  };
  return {
    url: `http://${options.host ?? HOST}:${port}`,
    host: options.host ?? HOST,
    port,
    setWebhookUrl: (url) => webhooks.setUrl(url),
    idle: () => webhooks.idle(),
    close: () => (closing ??= shutdown()),
  };
}

// ---------------------------------------------------------------------------------------------------
// Stripe objects (only the fields Stripe returns that matter here, plus the nulls the SDK types expect)

type Metadata = Record<string, string>;
type PaymentIntentStatus =
  | 'requires_payment_method'
  | 'requires_confirmation'
  | 'requires_action'
  | 'processing'
  | 'succeeded'
  | 'canceled';

interface PaymentMethodObject {
  id: string;
  object: 'payment_method';
  type: 'card';
  card: {
    brand: string;
    last4: string;
    exp_month: number;
    exp_year: number;
    funding: string;
    country: string;
  };
  created: number;
  customer: null;
  livemode: false;
  metadata: Metadata;
}

interface PaymentError {
  type: 'card_error';
  code: 'card_declined';
  decline_code: string;
  message: string;
  doc_url: string;
  charge: string;
  payment_method: PaymentMethodObject;
}

interface PaymentIntentObject {
  id: string;
  object: 'payment_intent';
  amount: number;
  amount_capturable: number;
  amount_received: number;
  application: null;
  application_fee_amount: null;
  automatic_payment_methods: { enabled: boolean } | null;
  canceled_at: number | null;
  cancellation_reason: string | null;
  capture_method: 'automatic';
  client_secret: string;
  confirmation_method: 'automatic';
  created: number;
  currency: string;
  customer: null;
  description: string | null;
  last_payment_error: PaymentError | null;
  latest_charge: string | null;
  livemode: false;
  metadata: Metadata;
  next_action: { type: 'use_stripe_sdk'; use_stripe_sdk: { type: string; source: string } } | null;
  on_behalf_of: null;
  payment_method: string | null;
  payment_method_options: null;
  /** Echoes `allowed_payment_method_types` (what stripe@23 create params call it) when given. */
  allowed_payment_method_types: string[] | null;
  payment_method_types: string[];
  processing: null;
  receipt_email: null;
  review: null;
  setup_future_usage: null;
  shipping: null;
  source: null;
  statement_descriptor: null;
  statement_descriptor_suffix: null;
  status: PaymentIntentStatus;
  transfer_data: null;
  transfer_group: null;
}

interface ChargeObject {
  id: string;
  object: 'charge';
  amount: number;
  amount_captured: number;
  amount_refunded: number;
  balance_transaction: string | null;
  captured: boolean;
  created: number;
  currency: string;
  description: string | null;
  failure_code: string | null;
  failure_message: string | null;
  livemode: false;
  metadata: Metadata;
  outcome: { type: string; network_status: string; reason: string | null; seller_message: string };
  paid: boolean;
  payment_intent: string;
  payment_method: string;
  refunded: boolean;
  status: 'succeeded' | 'failed';
}

interface RefundObject {
  id: string;
  object: 'refund';
  amount: number;
  balance_transaction: string;
  charge: string;
  created: number;
  currency: string;
  metadata: Metadata;
  payment_intent: string;
  reason: string | null;
  receipt_number: null;
  source_transfer_reversal: null;
  status: 'succeeded' | 'failed';
  failure_reason?: string;
  transfer_reversal: null;
}

interface StripeEvent {
  id: string;
  object: 'event';
  api_version: string;
  created: number;
  data: { object: unknown };
  livemode: false;
  pending_webhooks: number;
  request: { id: string | null; idempotency_key: string | null };
  type: string;
}

// ---------------------------------------------------------------------------------------------------
// Test payment methods

type Outcome =
  | { kind: 'succeeded'; refundFails?: true }
  | { kind: 'declined'; declineCode: string; message: string }
  | { kind: 'requires_action' };

interface TestCard {
  brand: string;
  last4: string;
  outcome: Outcome;
}

const TEST_CARDS = new Map<string, TestCard>([
  ['pm_card_visa', { brand: 'visa', last4: '4242', outcome: { kind: 'succeeded' } }],
  [
    'pm_card_chargeDeclined',
    {
      brand: 'visa',
      last4: '0002',
      outcome: { kind: 'declined', declineCode: 'generic_decline', message: 'Your card was declined.' },
    },
  ],
  [
    'pm_card_chargeDeclinedInsufficientFunds',
    {
      brand: 'visa',
      last4: '9995',
      outcome: {
        kind: 'declined',
        declineCode: 'insufficient_funds',
        message: 'Your card has insufficient funds.',
      },
    },
  ],
  ['pm_card_authenticationRequired', { brand: 'visa', last4: '3184', outcome: { kind: 'requires_action' } }],
  // The charge succeeds; a refund of it is created `succeeded`, then fails (`refund.failed`).
  ['pm_card_refundFail', { brand: 'visa', last4: '5126', outcome: { kind: 'succeeded', refundFails: true } }],
]);

interface PaymentMethodRecord {
  object: PaymentMethodObject;
  outcome: Outcome;
}

// ---------------------------------------------------------------------------------------------------
// Errors

interface StripeErrorBody {
  type: 'invalid_request_error' | 'card_error' | 'idempotency_error' | 'api_error';
  message: string;
  code?: string;
  param?: string;
  doc_url?: string;
  [extra: string]: unknown;
}

/**
 * An error answer. `remembered` marks errors raised once the endpoint started executing (state
 * errors); Stripe stores those under an idempotency key, but not parameter validation failures.
 */
class ApiError extends Error {
  readonly status: number;
  readonly body: StripeErrorBody;
  readonly remembered: boolean;

  constructor(status: number, body: StripeErrorBody, remembered = false) {
    super(body.message);
    this.status = status;
    this.body = body;
    this.remembered = remembered;
  }
}

function withDocUrl(body: StripeErrorBody): StripeErrorBody {
  return body.code
    ? { ...body, doc_url: `https://stripe.com/docs/error-codes/${body.code.replaceAll('_', '-')}` }
    : body;
}

function invalidRequest(message: string, details: { param?: string; code?: string } = {}): ApiError {
  return new ApiError(400, withDocUrl({ type: 'invalid_request_error', message, ...details }));
}

/** 404 when the URL names a missing object, 400 when a parameter refers to one (as Stripe answers). */
function resourceMissing(kind: string, id: string, param: string, status: 400 | 404): ApiError {
  return new ApiError(
    status,
    withDocUrl({
      type: 'invalid_request_error',
      code: 'resource_missing',
      message: `No such ${kind}: '${id}'`,
      param,
    }),
  );
}

function stateError(
  message: string,
  extra: { code?: string; param?: string; payment_intent?: unknown },
): ApiError {
  return new ApiError(400, withDocUrl({ type: 'invalid_request_error', message, ...extra }), true);
}

function paymentIntentUnexpectedState(message: string, intent: PaymentIntentObject): ApiError {
  return stateError(message, { code: 'payment_intent_unexpected_state', payment_intent: snapshot(intent) });
}

// ---------------------------------------------------------------------------------------------------
// Form bodies: Stripe's bracket notation (metadata[orderId]=…, payment_method_types[0]=card, a[]=…)

type FormValue = string | FormValue[] | FormObject;
interface FormObject {
  [key: string]: FormValue;
}
interface RawNode {
  [key: string]: string | RawNode;
}

function parseForm(encoded: string): FormObject {
  const root: RawNode = Object.create(null) as RawNode;
  for (const [key, value] of new URLSearchParams(encoded)) assignPath(root, splitKey(key), value);
  return normalizeForm(root) as FormObject;
}

/** `a[b][]` → ['a', 'b', '']; a key that is not well formed is taken literally. */
function splitKey(key: string): string[] {
  const open = key.indexOf('[');
  if (open <= 0) return [key];
  const segments = [key.slice(0, open)];
  const pattern = /\[([^[\]]*)\]/y;
  pattern.lastIndex = open;
  for (let match = pattern.exec(key); match; match = pattern.exec(key)) {
    segments.push(match[1] ?? '');
    if (pattern.lastIndex === key.length) return segments;
  }
  return [key];
}

function assignPath(root: RawNode, path: string[], value: string): void {
  let node = root;
  path.forEach((rawSegment, index) => {
    const segment = rawSegment === '' ? String(Object.keys(node).length) : rawSegment;
    if (index === path.length - 1) {
      node[segment] = value;
      return;
    }
    const child = node[segment];
    if (typeof child === 'object') {
      node = child;
    } else {
      const fresh = Object.create(null) as RawNode;
      node[segment] = fresh;
      node = fresh;
    }
  });
}

/** Objects keyed 0..n become arrays, except metadata, whose keys are the caller's. */
function normalizeForm(node: string | RawNode, key?: string): FormValue {
  if (typeof node === 'string') return node;
  const entries = Object.entries(node).map(([k, v]) => [k, normalizeForm(v, k)] as const);
  const indexed = key !== 'metadata' && entries.length > 0 && entries.every(([k]) => /^\d+$/.test(k));
  if (indexed) return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, v]) => v);
  return Object.fromEntries(entries);
}

/** Parameters in a canonical order, to compare two requests made with one idempotency key. */
function fingerprint(value: FormValue): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(fingerprint).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${fingerprint(value[k] ?? '')}`).join(',')}}`;
}

// ---------------------------------------------------------------------------------------------------
// Parameter readers

function optionalString(params: FormObject, name: string): string | undefined {
  const value = params[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string')
    throw invalidRequest(`Invalid string: ${JSON.stringify(value)}`, { param: name });
  return value;
}

function optionalInteger(params: FormObject, name: string): number | undefined {
  const value = optionalString(params, name);
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) {
    throw invalidRequest(`Invalid integer: ${value}`, { param: name, code: 'parameter_invalid_integer' });
  }
  return Number(value);
}

/** A positive integer amount; the caller checks the upper limit. */
function optionalPositiveAmount(params: FormObject, name: string): number | undefined {
  const amount = optionalInteger(params, name);
  if (amount === undefined) return undefined;
  if (amount < 1) {
    throw invalidRequest('This value must be greater than or equal to 1.', {
      param: name,
      code: 'parameter_invalid_integer',
    });
  }
  return amount;
}

function optionalAmount(params: FormObject, name = 'amount'): number | undefined {
  const amount = optionalPositiveAmount(params, name);
  if (amount !== undefined && amount > MAX_AMOUNT) {
    throw invalidRequest(`This value must be less than or equal to ${MAX_AMOUNT}.`, {
      param: name,
      code: 'parameter_invalid_integer',
    });
  }
  return amount;
}

/** Stripe's charge limits for a PaymentIntent's amount in its currency (functions/payments/stripe-limits.ts). */
function checkChargeLimits(amount: number, currency: string): void {
  const minimum = stripeMinimumCharge(currency);
  if (amount < minimum) {
    throw invalidRequest(`Amount must be at least ${formatAmount(minimum, currency)} ${currency}`, {
      param: 'amount',
      code: 'amount_too_small',
    });
  }
  if (amount > STRIPE_MAXIMUM_CHARGE) {
    throw invalidRequest(`Amount must be no more than ${formatAmount(STRIPE_MAXIMUM_CHARGE, currency)}`, {
      param: 'amount',
      code: 'amount_too_large',
    });
  }
}

/**
 * One page of a list, Stripe's way: `items` newest first; `limit` 1–100 (default 10); `starting_after`
 * pages toward older objects, `ending_before` toward newer ones (the page still newest first).
 */
function listPage<T extends { id: string }>(
  items: readonly T[],
  params: FormObject,
  kind: string,
  url: string,
) {
  const limit = optionalInteger(params, 'limit') ?? 10;
  if (limit < 1 || limit > 100) {
    throw invalidRequest(
      `This value must be greater than or equal to 1 and less than or equal to 100 (it currently is '${limit}').`,
      { param: 'limit' },
    );
  }
  const after = optionalString(params, 'starting_after');
  const before = optionalString(params, 'ending_before');
  if (after !== undefined && before !== undefined) {
    throw invalidRequest('You may only specify one of these parameters: ending_before, starting_after.', {
      param: 'ending_before',
    });
  }
  const position = (id: string, param: string) => {
    const index = items.findIndex((item) => item.id === id);
    if (index < 0) throw resourceMissing(kind, id, param, 400);
    return index;
  };
  if (before !== undefined) {
    const newer = items.slice(0, position(before, 'ending_before'));
    return {
      object: 'list',
      data: newer.slice(Math.max(0, newer.length - limit)),
      has_more: newer.length > limit,
      url,
    };
  }
  const older = after === undefined ? items : items.slice(position(after, 'starting_after') + 1);
  return { object: 'list', data: older.slice(0, limit), has_more: older.length > limit, url };
}

function optionalBoolean(params: FormObject, name: string): boolean | undefined {
  const value = optionalString(params, name);
  if (value === undefined) return undefined;
  if (value !== 'true' && value !== 'false')
    throw invalidRequest(`Invalid boolean: ${value}`, { param: name });
  return value === 'true';
}

function optionalChoice(params: FormObject, name: string, allowed: readonly string[]): string | undefined {
  const value = optionalString(params, name);
  if (value === undefined || value === '') return undefined;
  if (!allowed.includes(value)) {
    throw invalidRequest(`Invalid ${name}: must be one of ${allowed.join(', ')}`, { param: name });
  }
  return value;
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) {
    throw invalidRequest(`Missing required param: ${name}.`, { param: name, code: 'parameter_missing' });
  }
  return value;
}

const CURRENCIES = new Set(Intl.supportedValuesOf('currency').map((code) => code.toLowerCase()));

function optionalCurrency(params: FormObject): string | undefined {
  const value = optionalString(params, 'currency')?.toLowerCase();
  if (value === undefined) return undefined;
  if (!CURRENCIES.has(value)) throw invalidRequest(`Invalid currency: ${value}.`, { param: 'currency' });
  return value;
}

function optionalStringArray(params: FormObject, name: string): string[] | undefined {
  const value = params[name];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw invalidRequest(`Invalid array`, { param: name });
  }
  return value as string[];
}

/**
 * Applies `metadata` to `current` like Stripe: keys merge, an empty value unsets a key, and
 * `metadata=` (empty string) clears everything.
 */
function applyMetadata(params: FormObject, current: Metadata): Metadata {
  const value = params.metadata;
  if (value === undefined) return current;
  if (value === '') return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw invalidRequest('Invalid metadata: must be a hash of string keys to string values', {
      param: 'metadata',
    });
  }
  const merged = new Map(Object.entries(current));
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw invalidRequest('Metadata values must be strings.', { param: `metadata[${key}]` });
    }
    if (key.length > 40)
      throw invalidRequest('Metadata keys can be at most 40 characters.', { param: 'metadata' });
    if (item.length > 500) {
      throw invalidRequest('Metadata values can be at most 500 characters.', { param: `metadata[${key}]` });
    }
    if (item === '') merged.delete(key);
    else merged.set(key, item);
  }
  if (merged.size > 50) throw invalidRequest('Metadata can have at most 50 keys.', { param: 'metadata' });
  return Object.fromEntries(merged);
}

// ---------------------------------------------------------------------------------------------------
// Small helpers

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function randomToken(length: number): string {
  let token = '';
  for (const byte of randomBytes(length)) token += ALPHABET.charAt(byte % ALPHABET.length);
  return token;
}

function newId(prefix: string, length = 24): string {
  return `${prefix}_${randomToken(length)}`;
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function snapshot<T>(value: T): T {
  return structuredClone(value);
}

function formatAmount(amount: number, currency: string): string {
  const format = new Intl.NumberFormat('en-US', { style: 'currency', currency: currency.toUpperCase() });
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return format.format(amount / 10 ** digits);
}

/**
 * The Stripe-Signature header value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`,
 * with one `v1` per secret, as Stripe signs while an endpoint secret is being rolled.
 */
function signatureHeader(secrets: readonly string[], timestamp: number, body: string): string {
  const signatures = secrets.map(
    (secret) => `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex')}`,
  );
  return [`t=${timestamp}`, ...signatures].join(',');
}

// ---------------------------------------------------------------------------------------------------
// The API: a route table over in-memory state

interface ApiResponse {
  status: number;
  body: unknown;
}

interface RequestContext {
  params: FormObject;
  /** The `:id` path segment, or '' for collection routes. */
  id: string;
  /** Records an event for delivery after the response; `orderingKey` serialises delivery per object. */
  emit(type: string, object: unknown, orderingKey: string): void;
}

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  handler: (context: RequestContext) => ApiResponse;
  /** Open to a publishable key that presents the PaymentIntent's client secret. */
  publishable: boolean;
}

interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

interface RememberedResponse {
  endpoint: string;
  fingerprint: string;
  status: number;
  body: string;
  requestId: string;
  storedAt: number;
}

const CONFIRMABLE: ReadonlySet<PaymentIntentStatus> = new Set([
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
]);
const CANCELABLE: ReadonlySet<PaymentIntentStatus> = new Set([
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'processing',
]);
const CANCELLATION_REASONS = ['duplicate', 'fraudulent', 'requested_by_customer', 'abandoned'] as const;
const REFUND_REASONS = ['duplicate', 'fraudulent', 'requested_by_customer'] as const;

function route(
  method: Route['method'],
  path: string,
  handler: Route['handler'],
  options: { publishable?: boolean } = {},
): Route {
  const source = path.replace(':id', '(?<id>[^/]+)');
  return { method, pattern: new RegExp(`^${source}$`), handler, publishable: options.publishable ?? false };
}

function ok(body: unknown): ApiResponse {
  return { status: 200, body };
}

class StripeApi {
  readonly #webhooks: WebhookDispatcher;
  readonly #paymentIntents = new Map<string, PaymentIntentObject>();
  readonly #paymentMethods = new Map<string, PaymentMethodRecord>();
  readonly #charges = new Map<string, ChargeObject>();
  readonly #refunds = new Map<string, RefundObject>();
  readonly #idempotency = new Map<string, RememberedResponse>();
  readonly #routes: readonly Route[] = [
    route('POST', '/v1/payment_intents', (c) => this.#createPaymentIntent(c)),
    route('GET', '/v1/payment_intents', (c) =>
      // The map keeps creation order; reversed, newest first even within one second.
      ok(
        listPage(
          [...this.#paymentIntents.values()].reverse(),
          c.params,
          'payment_intent',
          '/v1/payment_intents',
        ),
      ),
    ),
    route('GET', '/v1/payment_intents/:id', (c) => ok(this.#findPaymentIntent(c.id)), { publishable: true }),
    route('POST', '/v1/payment_intents/:id', (c) => this.#updatePaymentIntent(c)),
    route('POST', '/v1/payment_intents/:id/confirm', (c) => this.#confirmPaymentIntent(c), {
      publishable: true,
    }),
    route('POST', '/v1/payment_intents/:id/cancel', (c) => this.#cancelPaymentIntent(c)),
    route('POST', '/v1/refunds', (c) => this.#createRefund(c)),
    route('GET', '/v1/refunds', (c) => this.#listRefunds(c)),
    route('GET', '/v1/refunds/:id', (c) => ok(this.#findRefund(c.id))),
  ];

  readonly #faults: FaultInjector;
  /** Answers held back by stripe.slow; close() cancels them. */
  readonly #held = new Map<NodeJS.Timeout, () => void>();

  constructor(webhooks: WebhookDispatcher, faults: FaultInjector) {
    this.#webhooks = webhooks;
    this.#faults = faults;
  }

  close(): void {
    for (const [timer, release] of this.#held) {
      clearTimeout(timer);
      release();
    }
    this.#held.clear();
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = newId('req', 14);
    let answer: HttpAnswer;
    let secretKey = false;
    try {
      const body = await readBody(req);
      const access = authenticate(req.headers);
      secretKey = access === 'secret';
      answer = this.#answer(req, access, body, requestId);
    } catch (error) {
      answer = errorAnswer(error);
    }
    if (secretKey) {
      const slowMs = this.#faults.delayMs('stripe.slow', { request: describeRequest(req) });
      if (slowMs > 0) await this.#hold(slowMs);
    }
    if (res.destroyed) return;
    res.writeHead(answer.status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(answer.body),
      'Request-Id': requestId,
      'Stripe-Version': headerValue(req.headers, 'stripe-version') ?? API_VERSION,
      ...answer.headers,
    });
    res.end(answer.body);
  }

  #hold(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#held.delete(timer);
        resolve();
      }, ms);
      this.#held.set(timer, resolve);
    });
  }

  #answer(
    req: IncomingMessage,
    access: 'secret' | 'publishable',
    rawBody: string,
    requestId: string,
  ): HttpAnswer {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', `http://${HOST}`);
    const matched = this.#match(method, url.pathname);
    const params = parseForm(method === 'POST' ? rawBody : url.search.slice(1));
    if (access === 'publishable') this.#checkClientSecret(matched, params);
    const key = method === 'POST' ? headerValue(req.headers, 'idempotency-key') : undefined;
    const endpoint = `${method} ${url.pathname}`;
    const print = fingerprint(params);
    const keyHeaders: Record<string, string> = key === undefined ? {} : { 'Idempotency-Key': key };

    if (key !== undefined) {
      const replay = this.#replay(key, endpoint, print);
      if (replay) return replay;
    }
    const faultable = access === 'secret';
    const request = describeRequest(req);
    const injected500 = () => {
      const answer = errorAnswer(new ApiError(500, { type: 'api_error', message: INJECTED_500_MESSAGE }));
      if (key === undefined) return answer;
      this.#idempotency.set(key, {
        endpoint,
        fingerprint: print,
        status: answer.status,
        body: answer.body,
        requestId,
        storedAt: Date.now(),
      });
      return { ...answer, headers: { ...keyHeaders, 'Stripe-Should-Retry': 'false' } };
    };
    if (faultable && this.#faults.roll('stripe.error', { request })) return injected500();
    const { response, remember } = this.#execute(matched.route, {
      params,
      id: matched.id,
      emit: (type, object, orderingKey) =>
        this.#webhooks.enqueue(orderingKey, buildEvent(type, object, requestId, key)),
    });
    if (faultable && this.#faults.roll('stripe.lost-response', { request })) return injected500();
    const body = JSON.stringify(response.body, null, 2);
    if (key !== undefined && remember) {
      this.#idempotency.set(key, {
        endpoint,
        fingerprint: print,
        status: response.status,
        body,
        requestId,
        storedAt: Date.now(),
      });
    }
    return { status: response.status, body, headers: keyHeaders };
  }

  #match(method: string, path: string): { route: Route; id: string } {
    for (const candidate of this.#routes) {
      if (candidate.method !== method) continue;
      const match = candidate.pattern.exec(path);
      if (match) return { route: candidate, id: decodeURIComponent(match.groups?.id ?? '') };
    }
    throw new ApiError(404, {
      type: 'invalid_request_error',
      message: `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
    });
  }

  /**
   * What a publishable key may do, as from Stripe.js in the customer's browser: retrieve or confirm
   * a PaymentIntent whose `client_secret` it presents; nothing else.
   */
  #checkClientSecret(matched: { route: Route; id: string }, params: FormObject): void {
    if (!matched.route.publishable) {
      throw new ApiError(401, {
        type: 'invalid_request_error',
        message:
          'This API call cannot be made with a publishable API key. Please use a secret API key. You can find a list of your API keys at https://dashboard.stripe.com/account/apikeys.',
      });
    }
    const intent = this.#paymentIntents.get(matched.id);
    if (!intent || params.client_secret !== intent.client_secret) {
      throw resourceMissing('payment_intent', matched.id, 'intent', 404);
    }
  }

  #execute(target: Route, context: RequestContext): { response: ApiResponse; remember: boolean } {
    try {
      return { response: target.handler(context), remember: true };
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      return { response: { status: error.status, body: { error: error.body } }, remember: error.remembered };
    }
  }

  /** A stored answer for a reused key, an idempotency_error if the key was used differently, or undefined. */
  #replay(key: string, endpoint: string, print: string): HttpAnswer | undefined {
    this.#forgetExpiredKeys();
    const stored = this.#idempotency.get(key);
    if (!stored) return undefined;
    const retryHint = `Try using a key other than '${key}' if you meant to execute a different request.`;
    if (stored.endpoint !== endpoint) {
      throw new ApiError(400, {
        type: 'idempotency_error',
        message: `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${stored.endpoint}' vs '${endpoint}'). ${retryHint}`,
      });
    }
    if (stored.fingerprint !== print) {
      throw new ApiError(400, {
        type: 'idempotency_error',
        message: `Keys for idempotent requests can only be used with the same parameters they were first used with. ${retryHint}`,
      });
    }
    return {
      status: stored.status,
      body: stored.body,
      headers: {
        'Idempotency-Key': key,
        'Idempotent-Replayed': 'true',
        'Original-Request': stored.requestId,
        // A stored 500 answers every retry with this key: the SDK must not keep trying.
        ...(stored.status >= 500 ? { 'Stripe-Should-Retry': 'false' } : {}),
      },
    };
  }

  /** Keys are kept 24 hours; the map is in insertion (hence time) order, so expired keys come first. */
  #forgetExpiredKeys(): void {
    const cutoff = Date.now() - IDEMPOTENCY_TTL_MS;
    for (const [key, stored] of this.#idempotency) {
      if (stored.storedAt >= cutoff) return;
      this.#idempotency.delete(key);
    }
  }

  // --- PaymentIntents -----------------------------------------------------------------------------

  #createPaymentIntent(context: RequestContext): ApiResponse {
    const { params } = context;
    const amount = required(optionalPositiveAmount(params, 'amount'), 'amount');
    const currency = required(optionalCurrency(params), 'currency');
    checkChargeLimits(amount, currency);
    const metadata = applyMetadata(params, {});
    const description = optionalString(params, 'description') ?? null;
    const confirm = optionalBoolean(params, 'confirm') ?? false;
    const allowedTypes = optionalStringArray(params, 'allowed_payment_method_types');
    const paymentMethodTypes = allowedTypes ??
      optionalStringArray(params, 'payment_method_types') ?? ['card'];
    const automatic = params.automatic_payment_methods;
    const paymentMethod = this.#paymentMethodParam(params);
    if (confirm && !paymentMethod) throw missingPaymentMethod();

    const id = newId('pi');
    const intent: PaymentIntentObject = {
      id,
      object: 'payment_intent',
      amount,
      amount_capturable: 0,
      amount_received: 0,
      application: null,
      application_fee_amount: null,
      automatic_payment_methods:
        typeof automatic === 'object' && !Array.isArray(automatic)
          ? { enabled: automatic.enabled === 'true' }
          : null,
      canceled_at: null,
      cancellation_reason: null,
      capture_method: 'automatic',
      client_secret: `${id}_secret_${randomToken(25)}`,
      confirmation_method: 'automatic',
      created: nowSeconds(),
      currency,
      customer: null,
      description,
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      metadata,
      next_action: null,
      on_behalf_of: null,
      payment_method: paymentMethod?.object.id ?? null,
      payment_method_options: null,
      allowed_payment_method_types: allowedTypes ?? null,
      payment_method_types: paymentMethodTypes,
      processing: null,
      receipt_email: null,
      review: null,
      setup_future_usage: null,
      shipping: null,
      source: null,
      statement_descriptor: null,
      statement_descriptor_suffix: null,
      status: paymentMethod ? 'requires_confirmation' : 'requires_payment_method',
      transfer_data: null,
      transfer_group: null,
    };
    this.#paymentIntents.set(id, intent);
    context.emit('payment_intent.created', intent, id);
    return confirm && paymentMethod ? this.#confirm(context, intent, paymentMethod) : ok(intent);
  }

  #updatePaymentIntent(context: RequestContext): ApiResponse {
    const { params } = context;
    const intent = this.#findPaymentIntent(context.id);
    const amount = optionalPositiveAmount(params, 'amount');
    const currency = optionalCurrency(params);
    if (amount !== undefined || currency !== undefined)
      checkChargeLimits(amount ?? intent.amount, currency ?? intent.currency);
    const description = optionalString(params, 'description');
    const metadata = applyMetadata(params, intent.metadata);
    if ((amount !== undefined || currency !== undefined) && !CONFIRMABLE.has(intent.status)) {
      throw paymentIntentUnexpectedState(
        `This PaymentIntent's amount could not be updated because it has a status of ${intent.status}. You may only update the amount of a PaymentIntent with one of the following statuses: requires_payment_method, requires_confirmation, requires_action.`,
        intent,
      );
    }
    if (amount !== undefined) intent.amount = amount;
    if (currency !== undefined) intent.currency = currency;
    if (description !== undefined) intent.description = description === '' ? null : description;
    intent.metadata = metadata;
    return ok(intent);
  }

  #confirmPaymentIntent(context: RequestContext): ApiResponse {
    const intent = this.#findPaymentIntent(context.id);
    const provided = this.#paymentMethodParam(context.params);
    if (!CONFIRMABLE.has(intent.status)) {
      const detail =
        intent.status === 'succeeded'
          ? 'it has already succeeded after being previously confirmed'
          : `it has a status of ${intent.status}`;
      throw paymentIntentUnexpectedState(`You cannot confirm this PaymentIntent because ${detail}.`, intent);
    }
    const paymentMethod = provided ?? this.#paymentMethods.get(intent.payment_method ?? '');
    if (!paymentMethod) throw paymentIntentUnexpectedState(missingPaymentMethod().message, intent);
    return this.#confirm(context, intent, paymentMethod);
  }

  #cancelPaymentIntent(context: RequestContext): ApiResponse {
    const intent = this.#findPaymentIntent(context.id);
    const reason = optionalChoice(context.params, 'cancellation_reason', CANCELLATION_REASONS);
    if (!CANCELABLE.has(intent.status)) {
      throw paymentIntentUnexpectedState(
        `You cannot cancel this PaymentIntent because it has a status of ${intent.status}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.`,
        intent,
      );
    }
    intent.status = 'canceled';
    intent.canceled_at = nowSeconds();
    intent.cancellation_reason = reason ?? null;
    intent.next_action = null;
    context.emit('payment_intent.canceled', intent, intent.id);
    return ok(intent);
  }

  /** Runs the payment method's scripted outcome against the PaymentIntent. */
  #confirm(
    context: RequestContext,
    intent: PaymentIntentObject,
    paymentMethod: PaymentMethodRecord,
  ): ApiResponse {
    intent.payment_method = paymentMethod.object.id;
    intent.last_payment_error = null;
    intent.next_action = null;
    const { outcome } = paymentMethod;
    if (outcome.kind === 'succeeded') return this.#succeed(context, intent);
    if (outcome.kind === 'requires_action') return this.#requireAction(context, intent);
    return this.#decline(context, intent, paymentMethod.object, outcome);
  }

  #succeed(context: RequestContext, intent: PaymentIntentObject): ApiResponse {
    const charge = this.#newCharge(intent, 'succeeded');
    intent.status = 'succeeded';
    intent.amount_received = intent.amount;
    intent.latest_charge = charge.id;
    context.emit('payment_intent.succeeded', intent, intent.id);
    return ok(intent);
  }

  #requireAction(context: RequestContext, intent: PaymentIntentObject): ApiResponse {
    intent.status = 'requires_action';
    intent.next_action = {
      type: 'use_stripe_sdk',
      use_stripe_sdk: { type: 'three_d_secure_redirect', source: newId('src') },
    };
    context.emit('payment_intent.requires_action', intent, intent.id);
    return ok(intent);
  }

  /** A decline leaves the intent in requires_payment_method and answers 402, like Stripe. */
  #decline(
    context: RequestContext,
    intent: PaymentIntentObject,
    paymentMethod: PaymentMethodObject,
    outcome: { declineCode: string; message: string },
  ): ApiResponse {
    const charge = this.#newCharge(intent, 'failed', outcome);
    const error: PaymentError = {
      type: 'card_error',
      code: 'card_declined',
      decline_code: outcome.declineCode,
      message: outcome.message,
      doc_url: 'https://stripe.com/docs/error-codes/card-declined',
      charge: charge.id,
      payment_method: snapshot(paymentMethod),
    };
    intent.status = 'requires_payment_method';
    intent.payment_method = null;
    intent.latest_charge = charge.id;
    intent.last_payment_error = error;
    context.emit('payment_intent.payment_failed', intent, intent.id);
    return { status: 402, body: { error: { ...snapshot(error), payment_intent: snapshot(intent) } } };
  }

  #newCharge(
    intent: PaymentIntentObject,
    status: ChargeObject['status'],
    decline?: { declineCode: string; message: string },
  ): ChargeObject {
    const succeeded = status === 'succeeded';
    const charge: ChargeObject = {
      id: newId('ch'),
      object: 'charge',
      amount: intent.amount,
      amount_captured: succeeded ? intent.amount : 0,
      amount_refunded: 0,
      balance_transaction: succeeded ? newId('txn') : null,
      captured: succeeded,
      created: nowSeconds(),
      currency: intent.currency,
      description: intent.description,
      failure_code: decline ? 'card_declined' : null,
      failure_message: decline?.message ?? null,
      livemode: false,
      metadata: { ...intent.metadata },
      outcome: succeeded
        ? {
            type: 'authorized',
            network_status: 'approved_by_network',
            reason: null,
            seller_message: 'Payment complete.',
          }
        : {
            type: 'issuer_declined',
            network_status: 'declined_by_network',
            reason: decline?.declineCode ?? null,
            seller_message: 'The bank did not return any further details with this decline.',
          },
      paid: succeeded,
      payment_intent: intent.id,
      payment_method: intent.payment_method ?? '',
      refunded: false,
      status,
    };
    this.#charges.set(charge.id, charge);
    return charge;
  }

  /** Resolves `payment_method`: a test token makes a new pm_… (as Stripe does), a known pm_… is reused. */
  #paymentMethodParam(params: FormObject): PaymentMethodRecord | undefined {
    const id = optionalString(params, 'payment_method');
    if (id === undefined || id === '') return undefined;
    const known = this.#paymentMethods.get(id);
    if (known) return known;
    const card = TEST_CARDS.get(id);
    if (!card) throw resourceMissing('PaymentMethod', id, 'payment_method', 400);
    const record: PaymentMethodRecord = {
      outcome: card.outcome,
      object: {
        id: newId('pm'),
        object: 'payment_method',
        type: 'card',
        card: {
          brand: card.brand,
          last4: card.last4,
          exp_month: 12,
          exp_year: new Date().getUTCFullYear() + 5,
          funding: 'credit',
          country: 'US',
        },
        created: nowSeconds(),
        customer: null,
        livemode: false,
        metadata: {},
      },
    };
    this.#paymentMethods.set(record.object.id, record);
    return record;
  }

  #findPaymentIntent(id: string, param?: 'payment_intent'): PaymentIntentObject {
    const intent = this.#paymentIntents.get(id);
    if (!intent) throw resourceMissing('payment_intent', id, param ?? 'intent', param ? 400 : 404);
    return intent;
  }

  // --- Refunds ------------------------------------------------------------------------------------

  #createRefund(context: RequestContext): ApiResponse {
    const { params } = context;
    const amount = optionalAmount(params);
    const reason = optionalChoice(params, 'reason', REFUND_REASONS);
    const metadata = applyMetadata(params, {});
    const charge = this.#refundableCharge(params);
    const remaining = charge.amount - charge.amount_refunded;
    if (remaining === 0) {
      throw stateError(`Charge ${charge.id} has already been refunded.`, { code: 'charge_already_refunded' });
    }
    const refundAmount = amount ?? remaining;
    if (refundAmount > remaining) {
      throw stateError(
        `Refund amount (${formatAmount(refundAmount, charge.currency)}) is greater than unrefunded amount on charge (${formatAmount(remaining, charge.currency)})`,
        { code: 'amount_too_large', param: 'amount' },
      );
    }
    const refund: RefundObject = {
      id: newId('re'),
      object: 'refund',
      amount: refundAmount,
      balance_transaction: newId('txn'),
      charge: charge.id,
      created: nowSeconds(),
      currency: charge.currency,
      metadata,
      payment_intent: charge.payment_intent,
      reason: reason ?? null,
      receipt_number: null,
      source_transfer_reversal: null,
      status: 'succeeded',
      transfer_reversal: null,
    };
    this.#refunds.set(refund.id, refund);
    charge.amount_refunded += refundAmount;
    charge.refunded = charge.amount_refunded === charge.amount;
    context.emit('charge.refunded', charge, charge.payment_intent);
    context.emit('refund.created', refund, charge.payment_intent);
    const created = ok(snapshot(refund));
    const method = this.#paymentMethods.get(charge.payment_method);
    if (method?.outcome.kind === 'succeeded' && method.outcome.refundFails)
      this.#failRefund(context, refund, charge);
    return created;
  }

  /**
   * What Stripe does to a refund of pm_card_refundFail's charge some time after creating it (here at
   * once, after the create answer): the refund fails, its amount goes back to the merchant.
   */
  #failRefund(context: RequestContext, refund: RefundObject, charge: ChargeObject): void {
    refund.status = 'failed';
    refund.failure_reason = 'expired_or_canceled_card';
    charge.amount_refunded -= refund.amount;
    charge.refunded = false;
    context.emit('refund.failed', refund, charge.payment_intent);
  }

  /** The succeeded charge behind `payment_intent` or `charge`. */
  #refundableCharge(params: FormObject): ChargeObject {
    const intentId = optionalString(params, 'payment_intent');
    const chargeId = optionalString(params, 'charge');
    if (intentId === undefined && chargeId === undefined) {
      throw invalidRequest(
        'One of the following params should be provided for this request: payment_intent or charge.',
        {
          code: 'parameter_missing',
        },
      );
    }
    if (intentId !== undefined && chargeId !== undefined) {
      throw invalidRequest('You may only specify one of these parameters: charge, payment_intent.', {
        param: 'charge',
      });
    }
    if (intentId !== undefined) {
      const intent = this.#findPaymentIntent(intentId, 'payment_intent');
      const charge = this.#charges.get(intent.latest_charge ?? '');
      if (intent.status !== 'succeeded' || !charge) {
        throw stateError(`This PaymentIntent (${intent.id}) does not have a successful charge to refund.`, {
          param: 'payment_intent',
        });
      }
      return charge;
    }
    const charge = this.#charges.get(chargeId ?? '');
    if (!charge) throw resourceMissing('charge', chargeId ?? '', 'charge', 400);
    if (charge.status !== 'succeeded') {
      throw stateError(`Charge ${charge.id} has a status of ${charge.status} and cannot be refunded.`, {
        param: 'charge',
      });
    }
    return charge;
  }

  /** GET /v1/refunds: newest first, optionally only those of one `payment_intent` or `charge`; paged by listPage. */
  #listRefunds(context: RequestContext): ApiResponse {
    const { params } = context;
    const intentId = optionalString(params, 'payment_intent');
    const chargeId = optionalString(params, 'charge');
    if (intentId !== undefined) this.#findPaymentIntent(intentId, 'payment_intent');
    if (chargeId !== undefined && !this.#charges.has(chargeId))
      throw resourceMissing('charge', chargeId, 'charge', 400);
    // The map keeps creation order; reversed, newest first even within one second.
    const refunds = [...this.#refunds.values()]
      .reverse()
      .filter((refund) => intentId === undefined || refund.payment_intent === intentId)
      .filter((refund) => chargeId === undefined || refund.charge === chargeId);
    return ok(listPage(refunds, params, 'refund', '/v1/refunds'));
  }

  #findRefund(id: string): RefundObject {
    const refund = this.#refunds.get(id);
    if (!refund) throw resourceMissing('refund', id, 'id', 404);
    return refund;
  }
}

function missingPaymentMethod(): ApiError {
  return invalidRequest(
    "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the PaymentIntent, specify a payment method with the `payment_method` parameter.",
    { param: 'payment_method', code: 'payment_intent_unexpected_state' },
  );
}

function eventContext(event: StripeEvent): FaultContext {
  const object = event.data.object as { metadata?: Metadata } | null;
  const orderId = object?.metadata?.orderId;
  return { eventType: event.type, eventId: event.id, ...(orderId ? { orderId } : {}) };
}

function buildEvent(type: string, object: unknown, requestId: string, idempotencyKey?: string): StripeEvent {
  return {
    id: newId('evt'),
    object: 'event',
    api_version: API_VERSION,
    created: nowSeconds(),
    data: { object: snapshot(object) },
    livemode: false,
    pending_webhooks: 1,
    request: { id: requestId, idempotency_key: idempotencyKey ?? null },
    type,
  };
}

/** Stripe's answer to an internal error; what `stripe.error` and `stripe.lost-response` answer. */
const INJECTED_500_MESSAGE =
  "Sorry, something went wrong. We've already been notified of the problem, but if you need any help, you can reach us at https://support.stripe.com/contact.";

/** `POST /v1/payment_intents/pi_…/confirm`: method and path, never the query (it can hold a client secret). */
function describeRequest(req: IncomingMessage): string {
  return `${req.method ?? 'GET'} ${new URL(req.url ?? '/', `http://${HOST}`).pathname}`;
}

function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Accepts `Bearer <key>` (what the SDK sends) or Basic auth with the key as user name: a test secret
 * key (`sk_test_…`), or a test publishable key (`pk_test_…`), which only reaches what Stripe.js does.
 */
function authenticate(headers: IncomingHttpHeaders): 'secret' | 'publishable' {
  const authorization = headerValue(headers, 'authorization');
  const fail = (message: string) => new ApiError(401, { type: 'invalid_request_error', message });
  if (!authorization) {
    throw fail(
      "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
    );
  }
  const [scheme = '', credentials = ''] = authorization.trim().split(/\s+/, 2);
  const key =
    scheme.toLowerCase() === 'basic'
      ? (Buffer.from(credentials, 'base64').toString('utf8').split(':')[0] ?? '')
      : scheme.toLowerCase() === 'bearer'
        ? credentials
        : '';
  if (/^sk_test_\S+$/.test(key)) return 'secret';
  if (/^pk_test_\S+$/.test(key)) return 'publishable';
  const redacted = key.length > 12 ? `${key.slice(0, 8)}${'*'.repeat(key.length - 12)}${key.slice(-4)}` : key;
  throw fail(
    `Invalid API Key provided: ${redacted}. This emulator accepts test mode keys (sk_test_…, or pk_test_… with a client secret) only.`,
  );
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw invalidRequest('Request body too large.');
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function errorAnswer(error: unknown): HttpAnswer {
  if (error instanceof ApiError) {
    return { status: error.status, body: JSON.stringify({ error: error.body }, null, 2), headers: {} };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    status: 500,
    body: JSON.stringify({ error: { type: 'api_error', message: `Emulator error: ${message}` } }, null, 2),
    headers: {},
  };
}

// ---------------------------------------------------------------------------------------------------
// Webhook delivery: one queue per object, at most one attempt in flight per queue, retries with
// exponential backoff, every attempt freshly signed.

interface PendingEvent {
  readonly body: string;
  attempts: number;
  /** webhook.delay: no attempt before this time (epoch ms). */
  readonly notBefore: number;
}

class WebhookDispatcher {
  readonly #secrets: readonly string[];
  readonly #retry: { maxAttempts: number; baseDelayMs: number };
  readonly #queues = new Map<string, PendingEvent[]>();
  /** Ordering keys whose head event has an attempt in flight or a retry scheduled. */
  readonly #busy = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #immediates = new Set<NodeJS.Immediate>();
  readonly #requests = new Set<ClientRequest>();
  #idleWaiters: Array<() => void> = [];
  #url: URL | undefined;
  #closed = false;

  readonly #faults: FaultInjector;

  constructor(
    secrets: readonly string[],
    retry: { maxAttempts: number; baseDelayMs: number },
    faults: FaultInjector,
  ) {
    this.#secrets = secrets;
    this.#retry = retry;
    this.#faults = faults;
  }

  setUrl(url: string): void {
    this.#url = new URL(url);
    for (const key of this.#queues.keys()) this.#soon(() => this.#pump(key));
  }

  /** Queues an event; delivery starts on a later turn of the event loop, never inside the API call. */
  enqueue(orderingKey: string, event: StripeEvent): void {
    if (this.#closed) return;
    const context = eventContext(event);
    // Decided once per event: a dropped event is never attempted, a kept one is retried as usual.
    if (this.#faults.roll('webhook.drop', context)) return;
    const notBefore = Date.now() + this.#faults.delayMs('webhook.delay', context);
    const queue = this.#queues.get(orderingKey) ?? [];
    queue.push({ body: JSON.stringify(event, null, 2), attempts: 0, notBefore });
    this.#queues.set(orderingKey, queue);
    this.#soon(() => this.#pump(orderingKey));
  }

  idle(): Promise<void> {
    if (this.#closed || this.#queues.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  close(): void {
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    for (const immediate of this.#immediates) clearImmediate(immediate);
    for (const request of this.#requests) request.destroy();
    this.#timers.clear();
    this.#immediates.clear();
    this.#requests.clear();
    this.#queues.clear();
    this.#busy.clear();
    this.#resolveIdleWaiters();
  }

  #pump(key: string): void {
    if (this.#closed || !this.#url || this.#busy.has(key)) return;
    const head = this.#queues.get(key)?.[0];
    if (!head) return;
    this.#busy.add(key);
    const wait = head.attempts === 0 ? head.notBefore - Date.now() : 0;
    if (wait > 0) {
      // Held back by webhook.delay; the events behind it on this object wait too, keeping the order.
      this.#after(wait, () => {
        this.#busy.delete(key);
        this.#pump(key);
      });
      return;
    }
    this.#attempt(key, head);
  }

  #attempt(key: string, event: PendingEvent): void {
    event.attempts += 1;
    void this.#post(event.body).then((delivered) => this.#settle(key, event, delivered));
  }

  #settle(key: string, event: PendingEvent, delivered: boolean): void {
    if (this.#closed) return;
    if (!delivered && event.attempts < this.#retry.maxAttempts) {
      const delay = this.#retry.baseDelayMs * 2 ** (event.attempts - 1);
      this.#after(delay, () => this.#attempt(key, event));
      return;
    }
    const queue = this.#queues.get(key) ?? [];
    queue.shift();
    if (queue.length === 0) this.#queues.delete(key);
    this.#busy.delete(key);
    this.#pump(key);
    if (this.#queues.size === 0) this.#resolveIdleWaiters();
  }

  /** POSTs one signed attempt; resolves true on a 2xx answer, false on anything else. Never rejects. */
  #post(body: string): Promise<boolean> {
    const url = this.#url;
    if (!url) return Promise.resolve(false);
    return new Promise((resolve) => {
      let settled = false;
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const request = send(url, {
        method: 'POST',
        agent: false,
        timeout: WEBHOOK_TIMEOUT_MS,
        headers: {
          'Content-Type': 'application/json; charset=utf-8',
          'Content-Length': Buffer.byteLength(body),
          'User-Agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
          'Stripe-Signature': signatureHeader(this.#secrets, nowSeconds(), body),
        },
      });
      const finish = (delivered: boolean) => {
        if (settled) return;
        settled = true;
        resolve(delivered);
      };
      this.#requests.add(request);
      request.on('response', (response) => {
        response.resume();
        finish(response.statusCode !== undefined && response.statusCode >= 200 && response.statusCode < 300);
      });
      request.on('timeout', () => request.destroy(new Error('webhook delivery timed out')));
      request.on('error', () => finish(false));
      request.on('close', () => {
        this.#requests.delete(request);
        finish(false);
      });
      request.end(body);
    });
  }

  #soon(task: () => void): void {
    const immediate = setImmediate(() => {
      this.#immediates.delete(immediate);
      task();
    });
    this.#immediates.add(immediate);
  }

  #after(delayMs: number, task: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      task();
    }, delayMs);
    this.#timers.add(timer);
  }

  #resolveIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
