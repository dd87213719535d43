/**
 * The error model. Every code a client can be answered with is in ERROR_CODES, once, with its
 * status: the HTTP edge (shared/http.ts) answers with that status and the OpenAPI builder
 * (docs/openapi.ts) documents the same list. Domain code returns outcome values for expected
 * business results (a reused key, an order that can no longer be cancelled); the handler turns a
 * refusal into a ClientError, and only the HTTP edge turns a ClientError into a response.
 */

/** The contract's body limit for every route. */
export const MAX_BODY_BYTES = 64 * 1024;

interface ErrorCodeSpec {
  status: 400 | 401 | 403 | 404 | 409 | 412 | 413 | 415 | 500;
  /** When it is answered, as the API reference words it. */
  description: string;
}

/** Every error code the API answers with, with its status. */
export const ERROR_CODES = {
  VALIDATION_FAILED: {
    status: 400,
    description:
      'A field, path parameter, query parameter or header is invalid; `details` lists each problem.',
  },
  INVALID_JSON: { status: 400, description: 'The body is empty or not JSON.' },
  MISSING_SIGNATURE: { status: 400, description: 'The Stripe webhook has no `Stripe-Signature` header.' },
  INVALID_SIGNATURE: {
    status: 400,
    description:
      'The `Stripe-Signature` does not match the body, or its timestamp is more than 300 s away from now (in the past or the future).',
  },
  INVALID_CURSOR: {
    status: 400,
    description:
      '`GET /inventory/reservations` or `GET /products`: the `cursor` is not a `nextCursor` this query returned.',
  },
  CUSTOMER_MISMATCH: {
    status: 403,
    description:
      "`POST /orders` with a customer's token: the body's `customerId` is not the token's `sub` (or the token has no `sub`).",
  },
  ORDER_NOT_FOUND: {
    status: 404,
    description: "No order has this id, or it is another customer's (the two are not told apart).",
  },
  PRODUCT_NOT_FOUND: { status: 404, description: 'No product has this sku.' },
  IDEMPOTENCY_KEY_REUSED: {
    status: 409,
    description: 'The `Idempotency-Key` was already used, by the same customer, with a different body.',
  },
  ORDER_NOT_CANCELLABLE: {
    status: 409,
    description: '`POST /orders/{orderId}/cancel`: the order is already paid, completed or cancelled.',
  },
  INSUFFICIENT_STOCK: {
    status: 409,
    description:
      '`POST /products/{sku}/stock-adjustments`: removing this many units would take `available` below zero; nothing changed.',
  },
  PRECONDITION_FAILED: {
    status: 412,
    description:
      "`If-Match` does not name the product's current `ETag` (its stock or details changed since it was read, or it does not exist); nothing changed.",
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    description: `The body is larger than ${MAX_BODY_BYTES} bytes (64 KiB).`,
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    description:
      'A route that takes a JSON body got another `Content-Type` (`application/json` or any `+json` type is accepted).',
  },
  INTERNAL_ERROR: { status: 500, description: 'A fault on the server side; the request may be retried.' },
} as const satisfies Record<string, ErrorCodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;
/** The codes a client's own request causes (every code but INTERNAL_ERROR). */
export type ClientErrorCode = Exclude<ErrorCode, 'INTERNAL_ERROR'>;

/** The codes answered with 400. */
export type BadRequestCode = {
  [K in ErrorCode]: (typeof ERROR_CODES)[K]['status'] extends 400 ? K : never;
}[ErrorCode];

export const statusOf = (code: ErrorCode): number => ERROR_CODES[code].status;

export interface ErrorDetail {
  path: string;
  message: string;
}

/** An error a client caused; the HTTP edge answers it with its code's status and this message. */
export class ClientError extends Error {
  readonly code: ClientErrorCode;
  readonly details: ErrorDetail[];
  constructor(code: ClientErrorCode, message: string, details: ErrorDetail[] = [], options?: ErrorOptions) {
    super(message, options);
    this.name = 'ClientError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return statusOf(this.code);
  }
}

/** A 400 whose `details` name each invalid field. */
export class ValidationError extends ClientError {
  constructor(
    message: string,
    details: ErrorDetail[] = [],
    code: BadRequestCode = 'VALIDATION_FAILED',
    options?: ErrorOptions,
  ) {
    super(code, message, details, options);
    this.name = 'ValidationError';
  }
}

/** Configuration is missing or malformed: the function refuses to start. */
export class ConfigError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigError';
  }
}
