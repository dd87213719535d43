import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Caller } from './caller.ts';
import { ClientError, ERROR_CODES, type ClientErrorCode } from './errors.ts';
import { httpRoute, MAX_BODY_BYTES, type HttpHandler } from './http.ts';
import { logger } from './logger.ts';

const context = { getRemainingTimeInMillis: () => 30_000, awsRequestId: 'req-1' } as unknown as Context;

interface EventOptions {
  method?: string;
  path?: string;
  body?: string;
  contentType?: string | null;
  headers?: Record<string, string>;
  isBase64Encoded?: boolean;
  pathParameters?: Record<string, string>;
  queryStringParameters?: Record<string, string>;
}

/** An API Gateway HTTP API (payload 2.0) event, headers lower-cased as API Gateway delivers them. */
function httpEvent(options: EventOptions = {}): APIGatewayProxyEventV2 {
  const method = options.method ?? 'POST';
  const path = options.path ?? '/things';
  const contentType = options.contentType === undefined ? 'application/json' : options.contentType;
  return {
    version: '2.0',
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString: '',
    headers: { ...(contentType === null ? {} : { 'content-type': contentType }), ...options.headers },
    requestContext: {
      accountId: '000000000000',
      apiId: 'api',
      domainName: 'localhost',
      domainPrefix: 'localhost',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: 'req-1',
      routeKey: `${method} ${path}`,
      stage: '$default',
      time: '01/Jan/2025:00:00:00 +0000',
      timeEpoch: 1_735_689_600_000,
    },
    isBase64Encoded: options.isBase64Encoded ?? false,
    ...(options.body !== undefined ? { body: options.body } : {}),
    ...(options.pathParameters ? { pathParameters: options.pathParameters } : {}),
    ...(options.queryStringParameters ? { queryStringParameters: options.queryStringParameters } : {}),
  };
}

async function call(handler: HttpHandler, options: EventOptions = {}) {
  const response = (await handler(httpEvent(options), context)) as APIGatewayProxyStructuredResultV2;
  const text = typeof response.body === 'string' ? response.body : undefined;
  return {
    ...response,
    json: text === undefined ? undefined : (JSON.parse(text) as Record<string, unknown>),
  };
}

const ThingSchema = z.strictObject({
  name: z.string().min(1).max(100),
  quantity: z.number().int().min(1),
  tags: z.array(z.string()).optional(),
});

/** A route that echoes what it was given, so tests can see what `run` received. */
const echo = httpRoute(
  {
    body: ThingSchema,
    params: z.object({ id: z.string().regex(/^[a-z0-9-]{1,16}$/) }),
    query: z.object({ verbose: z.enum(['true', 'false']).optional() }),
  },
  async ({ body, params, query, headers, rawBody }) => ({
    statusCode: 201,
    body: { body, params, query, idempotencyKey: headers['idempotency-key'] ?? null, rawBody },
    headers: { location: `/things/${params.id}` },
  }),
);

const validBody = JSON.stringify({ name: 'mug', quantity: 2 });
const ok = { body: validBody, pathParameters: { id: 'thing-1' } };

function throwing(error: unknown): HttpHandler {
  return httpRoute({}, async () => {
    throw error;
  });
}

describe('httpRoute', () => {
  // The 500 cases log their error by design; keep the test output readable.
  let level: ReturnType<typeof logger.getLevelName>;
  beforeAll(() => {
    level = logger.getLevelName();
    logger.setLogLevel('SILENT');
  });
  afterAll(() => logger.setLogLevel(level));

  it('hands the parsed body, params, query and headers to the route and answers JSON', async () => {
    const response = await call(echo, {
      ...ok,
      queryStringParameters: { verbose: 'true' },
      headers: { 'idempotency-key': 'key-1' },
    });
    expect(response.statusCode).toBe(201);
    expect(response.headers).toMatchObject({
      'content-type': 'application/json',
      location: '/things/thing-1',
    });
    expect(response.json).toEqual({
      body: { name: 'mug', quantity: 2 },
      params: { id: 'thing-1' },
      query: { verbose: 'true' },
      idempotencyKey: 'key-1',
      rawBody: validBody,
    });
  });

  it('answers without a body when the route returns none', async () => {
    const noContent = httpRoute({}, async () => ({ statusCode: 204 }));
    const response = await call(noContent, { method: 'DELETE', contentType: null });
    expect(response.statusCode).toBe(204);
    expect(response.body).toBeUndefined();
  });

  it('does not require a content type on routes without a body', async () => {
    const health = httpRoute({}, async () => ({ statusCode: 200, body: { status: 'ok' } }));
    const response = await call(health, { method: 'GET', contentType: null });
    expect(response.statusCode).toBe(200);
    expect(response.json).toEqual({ status: 'ok' });
  });

  it.each(['application/json; charset=utf-8', 'Application/JSON', 'application/merge-patch+json'])(
    'accepts content type %j',
    async (contentType) => {
      expect((await call(echo, { ...ok, contentType })).statusCode).toBe(201);
    },
  );

  it.each([
    ['missing', null],
    ['text/plain', 'text/plain'],
    ['form data', 'application/x-www-form-urlencoded'],
    ['a near miss', 'application/jsonx'],
    ['empty', ''],
  ])('answers 415 UNSUPPORTED_MEDIA_TYPE when the content type is %s', async (_what, contentType) => {
    const response = await call(echo, { ...ok, contentType });
    expect(response.statusCode).toBe(415);
    expect(response.json).toMatchObject({ error: { code: 'UNSUPPORTED_MEDIA_TYPE', details: [] } });
  });

  it.each([
    ['malformed JSON', '{"name": "mug",'],
    ['an empty body', ''],
    ['only whitespace', '  \n '],
    ['a missing body', undefined],
    ['trailing garbage', `${validBody}x`],
  ])('answers 400 INVALID_JSON for %s', async (_what, body) => {
    const response = await call(echo, { ...ok, body });
    expect(response.statusCode).toBe(400);
    expect(response.json).toMatchObject({ error: { code: 'INVALID_JSON' } });
    expect(typeof (response.json?.error as { message: unknown }).message).toBe('string');
  });

  it('answers 413 PAYLOAD_TOO_LARGE for a body over 64 KiB', async () => {
    const padding = 'x'.repeat(MAX_BODY_BYTES);
    const response = await call(echo, { ...ok, body: JSON.stringify({ name: padding, quantity: 1 }) });
    expect(response.statusCode).toBe(413);
    expect(response.json).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('counts the limit in bytes, not characters', async () => {
    // 33 000 two-byte characters: under 64 Ki characters, but 66 000 bytes.
    const body = JSON.stringify({ name: 'é'.repeat(33_000), quantity: 1 });
    expect(body.length).toBeLessThan(MAX_BODY_BYTES);
    expect((await call(echo, { ...ok, body })).statusCode).toBe(413);
  });

  it('accepts a body of exactly 64 KiB', async () => {
    const skeleton = JSON.stringify({ name: '', quantity: 1 });
    const body = JSON.stringify({ name: 'x'.repeat(MAX_BODY_BYTES - skeleton.length), quantity: 1 });
    expect(Buffer.byteLength(body)).toBe(MAX_BODY_BYTES);
    const response = await call(echo, { ...ok, body });
    // Past the size check: the schema (name ≤ 100) is what refuses it now.
    expect(response.statusCode).toBe(400);
    expect(response.json).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
  });

  it('answers 400 VALIDATION_FAILED with a detail per invalid field, by path', async () => {
    const body = JSON.stringify({ name: '', quantity: 1.5, tags: ['ok', 7], colour: 'red' });
    const response = await call(echo, { ...ok, body });
    expect(response.statusCode).toBe(400);
    const error = response.json?.error as {
      code: string;
      message: string;
      details: Array<{ path: string; message: string }>;
    };
    expect(error.code).toBe('VALIDATION_FAILED');
    expect(error.message).toMatch(/request body/);
    const paths = error.details.map((detail) => detail.path);
    expect(paths).toEqual(expect.arrayContaining(['name', 'quantity', 'tags.1']));
    // The unknown field is reported too (at the object's root).
    expect(error.details.some((detail) => /colour/.test(JSON.stringify(detail)))).toBe(true);
    for (const detail of error.details) expect(typeof detail.message).toBe('string');
  });

  it('answers 400 VALIDATION_FAILED for a body that is JSON but not an object', async () => {
    for (const body of ['[]', '"mug"', '42', 'null']) {
      const response = await call(echo, { ...ok, body });
      expect(response.statusCode, body).toBe(400);
      expect(response.json, body).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
    }
  });

  it('answers 400 VALIDATION_FAILED for bad path parameters and query strings', async () => {
    const badPath = await call(echo, { ...ok, pathParameters: { id: 'NOT VALID' } });
    expect(badPath.statusCode).toBe(400);
    expect(badPath.json).toMatchObject({ error: { code: 'VALIDATION_FAILED', details: [{ path: 'id' }] } });

    const badQuery = await call(echo, { ...ok, queryStringParameters: { verbose: 'maybe' } });
    expect(badQuery.statusCode).toBe(400);
    expect(badQuery.json).toMatchObject({
      error: { code: 'VALIDATION_FAILED', details: [{ path: 'verbose' }] },
    });
  });

  it('decodes a base64 body and passes the decoded text as rawBody', async () => {
    const body = JSON.stringify({ name: 'café', quantity: 3 });
    const response = await call(echo, {
      ...ok,
      body: Buffer.from(body).toString('base64'),
      isBase64Encoded: true,
    });
    expect(response.statusCode).toBe(201);
    expect(response.json).toMatchObject({ body: { name: 'café', quantity: 3 }, rawBody: body });
  });

  it('measures the size of a base64 body after decoding', async () => {
    // Base64 inflates by a third: this body is under the limit once decoded, though not as sent.
    const decoded = JSON.stringify({ name: 'x'.repeat(60_000), quantity: 1 });
    const encoded = Buffer.from(decoded).toString('base64');
    expect(encoded.length).toBeGreaterThan(MAX_BODY_BYTES);
    const response = await call(echo, { ...ok, body: encoded, isBase64Encoded: true });
    expect(response.statusCode).toBe(400);
    expect(response.json).toMatchObject({ error: { code: 'VALIDATION_FAILED' } });
  });

  it("hands the route its caller: a customer by the token's sub, the back office by the admin scope or IAM", async () => {
    const seen: Caller[] = [];
    const handler = httpRoute({}, async ({ caller }) => {
      seen.push(caller);
      return { statusCode: 204 };
    });
    const signedIn = httpEvent({ method: 'GET', contentType: null });
    Object.assign(signedIn.requestContext, {
      authorizer: { jwt: { claims: { sub: 'cust-1', scope: 'orders' }, scopes: ['orders'] } },
    });
    await handler(signedIn, context);
    const iam = httpEvent({ method: 'GET', contentType: null });
    Object.assign(iam.requestContext, {
      authorizer: { iam: { accessKey: 'AKIA', userArn: 'arn:aws:iam::1:user/x' } },
    });
    await handler(iam, context);
    await call(handler, { method: 'GET', contentType: null });
    const noSub = httpEvent({ method: 'GET', contentType: null });
    Object.assign(noSub.requestContext, { authorizer: { jwt: { claims: { scope: 'orders' }, scopes: [] } } });
    await handler(noSub, context);
    const admin = httpEvent({ method: 'GET', contentType: null });
    Object.assign(admin.requestContext, {
      authorizer: { jwt: { claims: { sub: 'ops-1', scope: 'orders/admin' }, scopes: ['orders/admin'] } },
    });
    await handler(admin, context);
    // A scope claim without the authorizer's parsed `scopes` (as a gateway may hand it) still counts.
    const adminClaimOnly = httpEvent({ method: 'GET', contentType: null });
    Object.assign(adminClaimOnly.requestContext, {
      authorizer: { jwt: { claims: { sub: 'ops-1', scope: 'orders orders/admin' } } },
    });
    await handler(adminClaimOnly, context);

    expect(seen).toEqual([
      { kind: 'customer', customerId: 'cust-1' },
      { kind: 'backOffice', via: 'iam' },
      { kind: 'backOffice', via: 'no-authorizer' },
      // A token without `sub` names nobody: '' matches no customer, and is not the back office either.
      { kind: 'customer', customerId: '' },
      { kind: 'backOffice', via: 'admin-token' },
      { kind: 'backOffice', via: 'admin-token' },
    ]);
  });

  it("answers 404 with the contract's error body for ORDER_NOT_FOUND", async () => {
    const response = await call(throwing(new ClientError('ORDER_NOT_FOUND', 'Order o-1 does not exist.')), {
      method: 'GET',
      contentType: null,
    });
    expect(response.statusCode).toBe(404);
    expect(response.headers).toMatchObject({ 'content-type': 'application/json' });
    expect(response.json).toEqual({
      error: { code: 'ORDER_NOT_FOUND', message: 'Order o-1 does not exist.', details: [] },
    });
  });

  it('answers every client error code with the status the registry gives it', async () => {
    for (const code of Object.keys(ERROR_CODES).filter(
      (code) => code !== 'INTERNAL_ERROR',
    ) as ClientErrorCode[]) {
      const response = await call(throwing(new ClientError(code, 'Said.')));
      expect(response.statusCode, code).toBe(ERROR_CODES[code].status);
      expect(response.json, code).toEqual({ error: { code, message: 'Said.', details: [] } });
    }
  });

  it.each([
    ['an Error', new Error('connect ECONNREFUSED 10.0.0.7:8000 secret-table-name')],
    ['a TypeError', new TypeError("Cannot read properties of undefined (reading 'secret-table-name')")],
    ['a thrown string', 'secret-table-name exploded'],
  ])('answers a bare 500 for %s, without leaking its message', async (_what, error) => {
    const response = await call(throwing(error));
    expect(response.statusCode).toBe(500);
    expect(response.json).toEqual({
      error: { code: 'INTERNAL_ERROR', message: expect.any(String), details: [] },
    });
    expect(response.body).not.toContain('secret-table-name');
    expect(response.body).not.toContain('ECONNREFUSED');
  });

  describe('fuzzing', () => {
    const contentTypes = fc.oneof(
      fc.constantFrom(
        'application/json',
        'application/json; charset=utf-8',
        'text/plain',
        'application/x+json',
      ),
      fc.string(),
      fc.constant(null),
    );
    const bodies = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.json({ maxDepth: 3 }),
      fc
        .record(
          { name: fc.oneof(fc.string(), fc.anything()), quantity: fc.anything(), tags: fc.anything() },
          { requiredKeys: [] },
        )
        .map((value) => JSON.stringify(value) ?? ''),
      fc.constantFrom('{"__proto__":{"name":"x"}}', '{"constructor":{"prototype":{}}}', '\u0000', '\uFEFF{}'),
    );

    it('no body, content type or encoding ever yields a 5xx', async () => {
      await fc.assert(
        fc.asyncProperty(
          bodies,
          contentTypes,
          fc.boolean(),
          fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
          async (body, contentType, isBase64Encoded, id) => {
            const response = await call(echo, {
              body,
              contentType,
              isBase64Encoded,
              ...(id === undefined ? {} : { pathParameters: { id } }),
            });
            const status = response.statusCode ?? 0;
            expect(status).toBeGreaterThanOrEqual(200);
            expect(status).toBeLessThan(500);
            if (status >= 400) {
              expect(response.json).toMatchObject({
                error: { code: expect.stringMatching(/^[A-Z_]+$/), message: expect.any(String) },
              });
            }
          },
        ),
        { numRuns: 1000 },
      );
    });
  });
});
