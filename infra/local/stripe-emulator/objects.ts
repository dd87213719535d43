import { randomBytes } from 'node:crypto';
import { STRIPE_MAXIMUM_CHARGE, stripeMinimumCharge } from '../../../functions/payments/stripe-limits.ts';
import { invalidRequest, resourceMissing, stateError, type ApiError } from './errors.ts';
import type { FormObject } from './form.ts';
import {
  listPage,
  optionalAmount,
  optionalBoolean,
  optionalChoice,
  optionalCurrency,
  optionalPositiveAmount,
  optionalString,
  optionalStringArray,
  required,
} from './params.ts';

/*
 * The emulated account's objects (PaymentIntents, charges, refunds, payment methods) and the rules
 * that move them, plus the events each change emits. Every operation takes a parsed request and
 * answers a status and a body, or throws an ApiError.
 */

export const API_VERSION = '2026-10-28.endive';

// ---------------------------------------------------------------------------------------------------
// Stripe objects (only the fields Stripe returns that matter here, plus the nulls the SDK types expect)

export type Metadata = Record<string, string>;
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

export interface StripeEvent {
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
// Rules

function paymentIntentUnexpectedState(message: string, intent: PaymentIntentObject): ApiError {
  return stateError(message, { code: 'payment_intent_unexpected_state', payment_intent: snapshot(intent) });
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

export function newId(prefix: string, length = 24): string {
  return `${prefix}_${randomToken(length)}`;
}

export function nowSeconds(): number {
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

// ---------------------------------------------------------------------------------------------------
// The operations, over in-memory state

export interface ApiResponse {
  status: number;
  body: unknown;
}

export interface RequestContext {
  params: FormObject;
  /** The `:id` path segment, or '' for collection routes. */
  id: string;
  /** Records an event for delivery after the response; `orderingKey` serialises delivery per object. */
  emit(type: string, object: unknown, orderingKey: string): void;
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

function ok(body: unknown): ApiResponse {
  return { status: 200, body };
}

/** Every object of the emulated account, in memory and lost on close. */
export class StripeObjects {
  readonly #paymentIntents = new Map<string, PaymentIntentObject>();
  readonly #paymentMethods = new Map<string, PaymentMethodRecord>();
  readonly #charges = new Map<string, ChargeObject>();
  readonly #refunds = new Map<string, RefundObject>();

  /** The PaymentIntent with this id, if any: what a publishable key's client secret is checked against. */
  paymentIntent(id: string): PaymentIntentObject | undefined {
    return this.#paymentIntents.get(id);
  }

  // --- PaymentIntents -----------------------------------------------------------------------------

  listPaymentIntents(context: RequestContext): ApiResponse {
    // The map keeps creation order; reversed, newest first even within one second.
    return ok(
      listPage(
        [...this.#paymentIntents.values()].reverse(),
        context.params,
        'payment_intent',
        '/v1/payment_intents',
      ),
    );
  }

  retrievePaymentIntent(context: RequestContext): ApiResponse {
    return ok(this.#findPaymentIntent(context.id));
  }

  createPaymentIntent(context: RequestContext): ApiResponse {
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

  updatePaymentIntent(context: RequestContext): ApiResponse {
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

  confirmPaymentIntent(context: RequestContext): ApiResponse {
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

  cancelPaymentIntent(context: RequestContext): ApiResponse {
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

  createRefund(context: RequestContext): ApiResponse {
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
  listRefunds(context: RequestContext): ApiResponse {
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

  retrieveRefund(context: RequestContext): ApiResponse {
    return ok(this.#findRefund(context.id));
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

/** The event for a change of `object`, made by the request `requestId` (with its idempotency key). */
export function buildEvent(
  type: string,
  object: unknown,
  requestId: string,
  idempotencyKey?: string,
): StripeEvent {
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
