/* Stripe's error answers: the shape, the kinds the emulator gives, and their HTTP form. */

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
export class ApiError extends Error {
  readonly status: number;
  readonly body: StripeErrorBody;
  readonly remembered: boolean;

  constructor(status: number, body: StripeErrorBody, remembered = false) {
    super(body.message);
    this.name = 'ApiError';
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

export function invalidRequest(message: string, details: { param?: string; code?: string } = {}): ApiError {
  return new ApiError(400, withDocUrl({ type: 'invalid_request_error', message, ...details }));
}

/** 404 when the URL names a missing object, 400 when a parameter refers to one (as Stripe answers). */
export function resourceMissing(kind: string, id: string, param: string, status: 400 | 404): ApiError {
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

export function stateError(
  message: string,
  extra: { code?: string; param?: string; payment_intent?: unknown },
): ApiError {
  return new ApiError(400, withDocUrl({ type: 'invalid_request_error', message, ...extra }), true);
}

/** What the server writes: a status, a JSON body, and headers besides the ones every answer carries. */
export interface HttpAnswer {
  status: number;
  body: string;
  headers: Record<string, string>;
}

export function errorAnswer(error: unknown): HttpAnswer {
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
