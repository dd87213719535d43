import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { FaultInjector } from '../faults.ts';
import { BodyTooLargeError, readBody } from '../http-server.ts';
import { ApiError, errorAnswer, invalidRequest, resourceMissing, type HttpAnswer } from './errors.ts';
import { fingerprint, parseForm, type FormObject } from './form.ts';
import { IdempotencyKeys } from './idempotency.ts';
import {
  API_VERSION,
  buildEvent,
  newId,
  StripeObjects,
  type ApiResponse,
  type RequestContext,
} from './objects.ts';
import type { WebhookDispatcher } from './webhooks.ts';

/*
 * The HTTP side: a route table over the objects, API key checks, idempotency keys, Stripe's error
 * answers, and the stripe.* faults.
 */

const HOST = '127.0.0.1';
const MAX_BODY_BYTES = 1024 * 1024;

interface Route {
  method: 'GET' | 'POST';
  pattern: RegExp;
  handler: (context: RequestContext) => ApiResponse;
  /** Open to a publishable key that presents the PaymentIntent's client secret. */
  publishable: boolean;
}

function route(
  method: Route['method'],
  path: string,
  handler: Route['handler'],
  options: { publishable?: boolean } = {},
): Route {
  const source = path.replace(':id', '(?<id>[^/]+)');
  return { method, pattern: new RegExp(`^${source}$`), handler, publishable: options.publishable ?? false };
}

export class StripeApi {
  readonly #webhooks: WebhookDispatcher;
  readonly #objects = new StripeObjects();
  readonly #idempotency = new IdempotencyKeys();
  readonly #routes: readonly Route[] = [
    route('POST', '/v1/payment_intents', (c) => this.#objects.createPaymentIntent(c)),
    route('GET', '/v1/payment_intents', (c) => this.#objects.listPaymentIntents(c)),
    route('GET', '/v1/payment_intents/:id', (c) => this.#objects.retrievePaymentIntent(c), {
      publishable: true,
    }),
    route('POST', '/v1/payment_intents/:id', (c) => this.#objects.updatePaymentIntent(c)),
    route('POST', '/v1/payment_intents/:id/confirm', (c) => this.#objects.confirmPaymentIntent(c), {
      publishable: true,
    }),
    route('POST', '/v1/payment_intents/:id/cancel', (c) => this.#objects.cancelPaymentIntent(c)),
    route('POST', '/v1/refunds', (c) => this.#objects.createRefund(c)),
    route('GET', '/v1/refunds', (c) => this.#objects.listRefunds(c)),
    route('GET', '/v1/refunds/:id', (c) => this.#objects.retrieveRefund(c)),
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
      const body = await readRequestBody(req);
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
      const replay = this.#idempotency.replay(key, endpoint, print);
      if (replay) return replay;
    }
    const faultable = access === 'secret';
    const request = describeRequest(req);
    const injected500 = () => {
      const answer = errorAnswer(new ApiError(500, { type: 'api_error', message: INJECTED_500_MESSAGE }));
      if (key === undefined) return answer;
      this.#idempotency.remember(key, {
        endpoint,
        fingerprint: print,
        status: answer.status,
        body: answer.body,
        requestId,
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
      this.#idempotency.remember(key, {
        endpoint,
        fingerprint: print,
        status: response.status,
        body,
        requestId,
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
    const intent = this.#objects.paymentIntent(matched.id);
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

/** The body as text; one over MAX_BODY_BYTES is Stripe's 400, and the rest of it is not read. */
async function readRequestBody(req: IncomingMessage): Promise<string> {
  try {
    return (await readBody(req, MAX_BODY_BYTES)).toString('utf8');
  } catch (error) {
    if (error instanceof BodyTooLargeError) throw invalidRequest('Request body too large.');
    throw error;
  }
}
