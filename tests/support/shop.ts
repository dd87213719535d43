import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { LOCAL_STRIPE_API_KEY } from '../../infra/local/config.ts';
import { pollUntil } from './poll.ts';

/*
 * A shop driving the running system the way its users do: products through the admin routes,
 * orders through the customer routes, payments confirmed in the "browser" with the publishable key
 * and the order's client secret, and what Stripe holds read back with the real SDK.
 */

export interface OrderView {
  orderId: string;
  customerId: string;
  status: string;
  sagaState: string;
  cancellationReason?: string;
  amount?: number;
  currency: string;
  payment?: {
    paymentIntentId: string;
    status: string;
    clientSecret?: string;
    lastError?: { code: string; declineCode?: string; message: string };
  };
  history: Array<{ sagaState: string; at: string }>;
}

/** What Stripe holds for one order: every PaymentIntent whose metadata names it, and the money kept. */
export interface MoneyAtStripe {
  intents: Array<{ id: string; status: string; amount: number; refunded: number }>;
  /** Succeeded minus refunded, over all the order's intents. */
  kept: number;
}

const json = { 'content-type': 'application/json' };

export function shop(target: { apiUrl: string; stripeUrl: string }) {
  const api = (path: string, init?: RequestInit) => fetch(`${target.apiUrl}${path}`, init);
  const url = new URL(target.stripeUrl);
  const stripeAs = (key: string) =>
    new Stripe(key, {
      host: url.hostname,
      port: Number(url.port),
      protocol: 'http',
      maxNetworkRetries: 0,
    });
  const stripe = stripeAs(LOCAL_STRIPE_API_KEY);
  const browser = stripeAs('pk_test_order_saga_browser');

  const getOrder = async (orderId: string) => (await (await api(`/orders/${orderId}`)).json()) as OrderView;

  return {
    stripe,
    sku: () => `sku-${randomUUID().slice(0, 8)}`,

    async putProduct(sku: string, available: number, unitPrice = 1250) {
      const response = await api(`/products/${sku}`, {
        method: 'PUT',
        headers: json,
        body: JSON.stringify({ name: `Product ${sku}`, unitPrice, currency: 'usd', available }),
      });
      if (response.status !== 200) throw new Error(`PUT /products/${sku}: ${response.status}`);
    },

    async getProduct(sku: string) {
      return (await (await api(`/products/${sku}`)).json()) as { available: number; reserved: number };
    },

    async placeOrder(body: {
      customerId: string;
      items: Array<{ sku: string; quantity: number }>;
      paymentMethodId?: string;
    }) {
      const response = await api('/orders', { method: 'POST', headers: json, body: JSON.stringify(body) });
      if (response.status !== 202)
        throw new Error(`POST /orders: ${response.status} ${await response.text()}`);
      return (await response.json()) as OrderView;
    },

    getOrder,

    waitFor: (orderId: string, done: (order: OrderView) => boolean, timeoutMs = 30_000) =>
      pollUntil(`order ${orderId}`, () => getOrder(orderId), done, timeoutMs),

    cancel: (orderId: string) => api(`/orders/${orderId}/cancel`, { method: 'POST' }),

    /** Waits until the order is final: COMPLETED, or CANCELLED once compensated. */
    settled: (orderId: string, timeoutMs = 30_000) =>
      pollUntil(
        `order ${orderId} settles`,
        () => getOrder(orderId),
        (order) => order.sagaState === 'COMPLETED' || order.sagaState === 'COMPENSATED',
        timeoutMs,
      ),

    /** Waits for PAYMENT_PENDING with a client secret, then pays as the customer's browser does. */
    async payInBrowser(orderId: string, paymentMethod = 'pm_card_visa') {
      const waiting = await pollUntil(
        `order ${orderId} shows its client secret`,
        () => getOrder(orderId),
        (order) => Boolean(order.payment?.clientSecret) || order.sagaState === 'COMPENSATING',
      );
      if (!waiting.payment?.clientSecret) throw new Error(`order ${orderId} is ${waiting.sagaState}`);
      return browser.paymentIntents
        .confirm(waiting.payment.paymentIntentId, {
          payment_method: paymentMethod,
          client_secret: waiting.payment.clientSecret,
        } as Stripe.PaymentIntentConfirmParams)
        .catch((error: unknown) => {
          // Declined, or too late (the timeout canceled it): the saga decides what follows.
          if (error instanceof Stripe.errors.StripeCardError) return undefined;
          if (
            error instanceof Stripe.errors.StripeInvalidRequestError &&
            error.code === 'payment_intent_unexpected_state'
          )
            return undefined;
          throw error;
        });
    },

    /** Every PaymentIntent Stripe holds for the order (by metadata.orderId), with its refunds. */
    async moneyAtStripe(orderId: string): Promise<MoneyAtStripe> {
      const intents: MoneyAtStripe['intents'] = [];
      for await (const intent of stripe.paymentIntents.list({ limit: 100 })) {
        if (intent.metadata?.orderId !== orderId) continue;
        let refunded = 0;
        for await (const refund of stripe.refunds.list({ payment_intent: intent.id, limit: 100 })) {
          if (refund.status !== 'failed' && refund.status !== 'canceled') refunded += refund.amount;
        }
        intents.push({ id: intent.id, status: intent.status, amount: intent.amount, refunded });
      }
      const kept = intents
        .filter((intent) => intent.status === 'succeeded')
        .reduce((sum, intent) => sum + intent.amount - intent.refunded, 0);
      return { intents, kept };
    },
  };
}

export type Shop = ReturnType<typeof shop>;
