import middy, { type MiddlewareObj } from '@middy/core';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { z } from 'zod';
import { ClientError, MAX_BODY_BYTES, ValidationError, type ErrorDetail } from './errors.ts';
import { callerOf, type Caller } from './caller.ts';
import { observability } from './lambda-edge.ts';
import { logger } from './logger.ts';

export { MAX_BODY_BYTES } from './errors.ts';

type Schema = z.ZodType;

export interface RouteSpec<B extends Schema, P extends Schema, Q extends Schema> {
  /** Parse the body as JSON with this schema (requires `Content-Type: application/json`). */
  body?: B;
  params?: P;
  query?: Q;
}

export interface RouteRequest<B extends Schema, P extends Schema, Q extends Schema> {
  body: z.infer<B>;
  params: z.infer<P>;
  query: z.infer<Q>;
  /** Header names lower-cased, as API Gateway HTTP APIs deliver them. */
  headers: Readonly<Record<string, string | undefined>>;
  /** The body exactly as received (base64 undone), for signature checks. */
  rawBody: string;
  /** Who is calling: a customer (by their token's `sub`) or the back office (shared/caller.ts). */
  caller: Caller;
}

export interface RouteResponse {
  statusCode: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type HttpHandler = (
  event: APIGatewayProxyEventV2,
  context: Context,
) => Promise<APIGatewayProxyStructuredResultV2>;

const IdempotencyKeySchema = z.string().min(1).max(255).optional();

/** The optional `Idempotency-Key` header of a write that may be retried: 1-255 characters. */
export function idempotencyKeyOf(headers: Readonly<Record<string, string | undefined>>): string | undefined {
  const key = IdempotencyKeySchema.safeParse(headers['idempotency-key']);
  if (!key.success) {
    throw new ValidationError('The Idempotency-Key header must be 1-255 characters.', [
      { path: 'Idempotency-Key', message: 'must be 1-255 characters' },
    ]);
  }
  return key.data;
}

/** Turns zod issues into the contract's `details`. */
export function issuesToDetails(issues: readonly z.core.$ZodIssue[]): ErrorDetail[] {
  return issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
}

function parseWith<T extends Schema>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) {
    throw new ValidationError(`The ${what} is invalid.`, issuesToDetails(result.error.issues));
  }
  return result.data;
}

function decodeBody(event: APIGatewayProxyEventV2): string {
  if (event.body === undefined || event.body === null) return '';
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
}

function parseJsonBody(rawBody: string, contentType: string | undefined): unknown {
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (!mediaType || !(mediaType === 'application/json' || mediaType.endsWith('+json'))) {
    throw new ClientError('UNSUPPORTED_MEDIA_TYPE', 'The request body must be application/json.');
  }
  if (rawBody.trim() === '') throw new ValidationError('The request body is empty.', [], 'INVALID_JSON');
  try {
    return JSON.parse(rawBody);
  } catch (error) {
    throw new ValidationError('The request body is not valid JSON.', [], 'INVALID_JSON', { cause: error });
  }
}

export function jsonResponse(statusCode: number, body: unknown, headers: Record<string, string> = {}) {
  return {
    statusCode,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  } satisfies APIGatewayProxyStructuredResultV2;
}

/** The one place errors become HTTP: client errors keep their message, anything else is a bare 500. */
export function httpErrors(): MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> {
  return {
    onError: async (request) => {
      const error = request.error;
      if (error instanceof ClientError) {
        request.response = jsonResponse(error.status, {
          error: { code: error.code, message: error.message, details: error.details },
        });
        return;
      }
      logger.error('unhandled error', { error });
      request.response = jsonResponse(500, {
        error: { code: 'INTERNAL_ERROR', message: 'Something went wrong on our side.', details: [] },
      });
    },
  };
}

/**
 * An API Gateway HTTP API (payload 2.0) handler: the Lambda edge (tracing, logger context, metrics,
 * shared/lambda-edge.ts), then size limit, content type, JSON parsing and schema validation before
 * `run`; errors mapped to the contract's error body after it.
 */
export function httpRoute<
  B extends Schema = z.ZodUnknown,
  P extends Schema = z.ZodUnknown,
  Q extends Schema = z.ZodUnknown,
>(spec: RouteSpec<B, P, Q>, run: (request: RouteRequest<B, P, Q>) => Promise<RouteResponse>): HttpHandler {
  return middy<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2>()
    .use(observability({ logFailures: false }))
    .use(httpErrors())
    .handler(async (event) => {
      const rawBody = decodeBody(event);
      if (Buffer.byteLength(rawBody) > MAX_BODY_BYTES) {
        throw new ClientError(
          'PAYLOAD_TOO_LARGE',
          `The request body is larger than ${MAX_BODY_BYTES} bytes.`,
        );
      }
      const headers = event.headers ?? {};
      const body = spec.body
        ? parseWith(spec.body, parseJsonBody(rawBody, headers['content-type']), 'request body')
        : undefined;
      const params = spec.params ? parseWith(spec.params, event.pathParameters ?? {}, 'path') : undefined;
      const query = spec.query
        ? parseWith(spec.query, event.queryStringParameters ?? {}, 'query string')
        : undefined;
      const caller = callerOf(event);
      const response = await run({ body, params, query, headers, rawBody, caller } as RouteRequest<B, P, Q>);
      return response.body === undefined
        ? { statusCode: response.statusCode, headers: response.headers ?? {} }
        : jsonResponse(response.statusCode, response.body, response.headers);
    });
}
