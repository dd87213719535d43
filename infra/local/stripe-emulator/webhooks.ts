import { createHmac } from 'node:crypto';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { FaultContext, FaultInjector } from '../faults.ts';
import { nowSeconds, type Metadata, type StripeEvent } from './objects.ts';

/*
 * Webhook delivery: one queue per object, at most one attempt in flight per queue, retries with
 * exponential backoff, every attempt freshly signed; the webhook.* faults.
 */

export interface WebhookRetry {
  maxAttempts: number;
  baseDelayMs: number;
}

export const DEFAULT_RETRY: WebhookRetry = { maxAttempts: 8, baseDelayMs: 1000 };
const WEBHOOK_TIMEOUT_MS = 30_000;

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

/** What the webhook.* fault filters match an event on. */
function eventContext(event: StripeEvent): FaultContext {
  const object = event.data.object as { metadata?: Metadata } | null;
  const orderId = object?.metadata?.orderId;
  return { eventType: event.type, eventId: event.id, ...(orderId ? { orderId } : {}) };
}

interface PendingEvent {
  readonly body: string;
  attempts: number;
  /** webhook.delay: no attempt before this time (epoch ms). */
  readonly notBefore: number;
}

export class WebhookDispatcher {
  readonly #secrets: readonly string[];
  readonly #retry: WebhookRetry;
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

  constructor(secrets: readonly string[], retry: WebhookRetry, faults: FaultInjector) {
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
