import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { APIGatewayProxyEventV2, Context } from 'aws-lambda';
import { glob, readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CreateOrderRequestSchema,
  applySagaStep,
  newOrder,
  orderView,
  requestCancellation,
  type Order,
  type SagaStep,
} from '../functions/orders/order.ts';
import { productView, PutProductRequestSchema, StockUnavailableError } from '../functions/inventory/stock.ts';
import { httpRoute } from '../shared/http.ts';
import { buildApp } from '../stacks/app.ts';
import { checkSchema } from '../tests/support/json-schema.ts';
import { buildOpenApiDocument, ERROR_CODES, errorExample, type ErrorCode } from './openapi.ts';

type Json = Record<string, unknown>;
interface Operation {
  security: Array<Record<string, string[]>>;
  'x-status': 'implemented' | 'planned';
  description?: string;
  responses: Record<string, Json>;
}
interface StackRoute {
  key: string;
  authorizationType: string;
  scopes: string[] | undefined;
}

const document = buildOpenApiDocument();
const schemas = document.components.schemas as Record<string, Json>;
const METHODS = ['get', 'put', 'post', 'patch', 'delete'] as const;

function operations(): Array<{ key: string; operation: Operation }> {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    METHODS.filter((method) => method in (item as Json)).map((method) => ({
      key: `${method.toUpperCase()} ${path}`,
      operation: (item as Record<string, Operation>)[method]!,
    })),
  );
}

function stackRoutes(context: Record<string, string> = {}): StackRoute[] {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } });
  const { stack } = buildApp(app, {});
  return Object.values(Template.fromStack(stack).findResources('AWS::ApiGatewayV2::Route')).map((route) => ({
    key: String(route.Properties.RouteKey),
    authorizationType: String(route.Properties.AuthorizationType),
    scopes: route.Properties.AuthorizationScopes as string[] | undefined,
  }));
}

/** The error responses of an operation, `$ref`s resolved: status → example codes. */
function errorCodesByStatus(operation: Operation): Array<{ status: string; codes: string[] }> {
  return Object.entries(operation.responses).flatMap(([status, response]) => {
    const resolved = (
      typeof response.$ref === 'string'
        ? (document.components.responses as Record<string, Json>)[response.$ref.split('/').pop()!]
        : response
    ) as { content?: Record<string, { schema: Json; examples?: Record<string, { value: unknown }> }> };
    const media = resolved.content?.['application/json'];
    if (media?.schema.$ref !== '#/components/schemas/Error') return [];
    return [{ status, codes: Object.keys(media.examples ?? {}) }];
  });
}

function apiEvent(body: string, contentType: string): APIGatewayProxyEventV2 {
  return {
    body,
    headers: { 'content-type': contentType },
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
}

describe('the OpenAPI document', () => {
  let iamRoutes: StackRoute[];
  let jwtRoutes: StackRoute[];
  beforeAll(() => {
    iamRoutes = stackRoutes();
    jwtRoutes = stackRoutes({ jwtIssuer: 'https://issuer.example.com/', jwtAudience: 'order-saga' });
  });

  it('is the committed docs/openapi.json (run `npm run docs:openapi` after changing the API)', async () => {
    const committed = JSON.parse(
      await readFile(new URL('./openapi.json', import.meta.url), 'utf8'),
    ) as unknown;
    expect(committed).toEqual(JSON.parse(JSON.stringify(document)));
  });

  it("implements exactly the stack's HTTP API routes", () => {
    const implemented = operations().filter(({ operation }) => operation['x-status'] === 'implemented');
    expect(implemented.map(({ key }) => key).sort()).toEqual(iamRoutes.map(({ key }) => key).sort());
  });

  it('marks the contract routes this build lacks as planned, and the stack has none of them', () => {
    const planned = operations().filter(({ operation }) => operation['x-status'] !== 'implemented');
    expect(planned.map(({ key }) => key).sort()).toEqual([]);
    for (const { key, operation } of planned) {
      expect(operation['x-status']).toBe('planned');
      expect(operation.description).toMatch(/^Planned: /);
      expect(iamRoutes.map((route) => route.key)).not.toContain(key);
    }
  });

  it("declares each route's authorization as the stack configures it, with IAM or with JWT", () => {
    for (const { key, operation } of operations().filter(
      ({ operation }) => operation['x-status'] === 'implemented',
    )) {
      const iam = iamRoutes.find((route) => route.key === key)!;
      const jwt = jwtRoutes.find((route) => route.key === key)!;
      if (operation.security.length === 0) {
        expect([iam.authorizationType, jwt.authorizationType], key).toEqual(['NONE', 'NONE']);
        continue;
      }
      expect(operation.security, key).toContainEqual({ sigv4: [] });
      expect(iam.authorizationType, key).toBe('AWS_IAM');
      expect(jwt.authorizationType, key).toBe('JWT');
      const scopes = operation.security.find((requirement) => 'jwt' in requirement)!.jwt!;
      expect(jwt.scopes ?? [], key).toEqual(scopes);
    }
  });

  it("describes errors as the contract's {error:{code,message,details}}", () => {
    const error = schemas.Error as { required: string[]; properties: { error: Json } };
    expect(error.required).toEqual(['error']);
    const inner = error.properties.error as { required: string[]; properties: Json };
    expect(Object.keys(inner.properties).sort()).toEqual(['code', 'details', 'message']);
    expect(inner.required.sort()).toEqual(['code', 'details', 'message']);
    expect(inner.properties.details).toEqual({
      type: 'array',
      items: { $ref: '#/components/schemas/ErrorDetail' },
    });
    expect(Object.keys((schemas.ErrorDetail as { properties: Json }).properties).sort()).toEqual([
      'message',
      'path',
    ]);
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
      expect(code).toMatch(/^[A-Z]+(_[A-Z]+)*$/);
      expect(
        checkSchema({ $ref: '#/components/schemas/Error' }, errorExample(code), { root: document }),
        code,
      ).toEqual([]);
    }
  });

  it('documents every error code of the registry, under its status, and the code answers each one', async () => {
    // The registry (shared/errors.ts) is the one list: the compiler keeps the code to it, so what
    // is left to check is that no code in it is dead and none is undocumented.
    const files: string[] = [];
    for await (const file of glob(['functions/**/*.ts', 'shared/**/*.ts'])) files.push(file);
    const sources = await Promise.all(
      files.filter((file) => !file.includes('.test.')).map((file) => readFile(file, 'utf8')),
    );
    const produced = (code: string) => sources.some((source) => source.includes(`'${code}'`));
    for (const code of Object.keys(ERROR_CODES)) expect(produced(code), code).toBe(true);
    const used = new Set<string>();
    for (const { key, operation } of operations()) {
      for (const { status, codes } of errorCodesByStatus(operation)) {
        for (const code of codes) {
          expect(String(ERROR_CODES[code as ErrorCode].status), `${key} ${code}`).toBe(status);
          used.add(code);
        }
      }
    }
    expect([...used].sort()).toEqual(Object.keys(ERROR_CODES).sort());
  });

  it('words the request-handling errors exactly as the HTTP edge answers them', async () => {
    const route = httpRoute({ body: CreateOrderRequestSchema }, async () => ({ statusCode: 202, body: {} }));
    const cases: Array<[ErrorCode, APIGatewayProxyEventV2]> = [
      ['INVALID_JSON', apiEvent('{', 'application/json')],
      ['UNSUPPORTED_MEDIA_TYPE', apiEvent('{}', 'text/plain')],
      ['PAYLOAD_TOO_LARGE', apiEvent('x'.repeat(64 * 1024 + 1), 'application/json')],
    ];
    for (const [code, event] of cases) {
      const response = await route(event, {} as Context);
      expect(response.statusCode, code).toBe(ERROR_CODES[code].status);
      expect(JSON.parse(String(response.body)), code).toEqual(errorExample(code));
    }
    const invalid = await route(
      apiEvent(
        JSON.stringify({ customerId: 'c', items: [{ sku: 'a', quantity: 1000 }], note: 'x' }),
        'application/json',
      ),
      {} as Context,
    );
    expect(invalid.statusCode).toBe(400);
    expect(JSON.parse(String(invalid.body))).toEqual(errorExample('VALIDATION_FAILED'));
  });

  it('takes the request bodies from the schemas the handlers validate with', () => {
    const cases: Array<[string, { safeParse(value: unknown): { success: boolean } }, unknown, boolean]> = [
      [
        'CreateOrderRequest',
        CreateOrderRequestSchema,
        { customerId: 'c', items: [{ sku: 'a', quantity: 1 }], currency: 'EUR' },
        true,
      ],
      [
        'CreateOrderRequest',
        CreateOrderRequestSchema,
        { customerId: 'c', items: [{ sku: 'a', quantity: 1 }], extra: 1 },
        false,
      ],
      ['CreateOrderRequest', CreateOrderRequestSchema, { customerId: 'c', items: [] }, false],
      [
        'PutProductRequest',
        PutProductRequestSchema,
        { name: 'n', unitPrice: 100, currency: 'usd', available: 3 },
        true,
      ],
      [
        'PutProductRequest',
        PutProductRequestSchema,
        { name: 'n', unitPrice: 1.5, currency: 'usd', available: 3 },
        false,
      ],
    ];
    for (const [id, schema, value, valid] of cases) {
      expect(schema.safeParse(value).success, `${id} zod`).toBe(valid);
      expect(checkSchema(schemas[id], value, { root: document }).length === 0, `${id} document`).toBe(valid);
    }
  });

  it('describes the order exactly as GET /orders/{orderId} shows it, in every saga state', () => {
    const t0 = new Date('2025-01-01T00:00:00.000Z');
    const orderId = 'order-1';
    const reserved: SagaStep = {
      step: 'STOCK_RESERVED',
      orderId,
      reservation: { amount: 2400, currency: 'usd', items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1200 }] },
    };
    const failure = { Error: 'PAYMENT_FAILED', Cause: '{}' };
    // A decline as the payment step reports it, and a shortage as a function error: each with its detail.
    const declined = {
      Error: 'PaymentDeclinedError',
      Cause: JSON.stringify({ failureCode: 'generic_decline', message: 'Your card was declined.' }),
    };
    const short = {
      Error: 'OutOfStockError',
      Cause: JSON.stringify({
        errorType: 'OutOfStockError',
        errorMessage: new StockUnavailableError('OUT_OF_STOCK', ['SKU-1']).message,
        trace: [],
      }),
    };
    const steps: SagaStep[][] = [
      [
        reserved,
        {
          step: 'PAYMENT_PENDING',
          orderId,
          payment: {
            paymentIntentId: 'pi_1',
            status: 'requires_payment_method',
            clientSecret: 'pi_1_secret_x',
          },
        },
        { step: 'COMPLETED', orderId, payment: { paymentIntentId: 'pi_1', status: 'succeeded' } },
      ],
      [reserved, { step: 'COMPENSATING', orderId, failure }, { step: 'COMPENSATED', orderId, failure }],
      [
        reserved,
        { step: 'COMPENSATING', orderId, failure: declined },
        { step: 'COMPENSATED', orderId, failure: declined },
      ],
      [
        { step: 'COMPENSATING', orderId, failure: short },
        { step: 'COMPENSATED', orderId, failure: short },
      ],
    ];
    const properties = Object.keys((schemas.Order as { properties: Json }).properties);
    for (const path of steps) {
      let order: Order = newOrder(
        { customerId: 'c-1', items: [{ sku: 'SKU-1', quantity: 2 }] },
        orderId,
        t0,
      ).order;
      for (const step of [undefined, ...path]) {
        if (step) {
          const outcome = applySagaStep(order, step, new Date(t0.getTime() + 1000));
          order = outcome.order;
        }
        if (step?.step === 'COMPENSATED' && step.failure !== failure) {
          expect(order.cancellationDetail, JSON.stringify(step.failure)).toBeDefined();
        }
        const view = JSON.parse(JSON.stringify(orderView(order, { kind: 'backOffice', via: 'iam' }))) as Json;
        expect(checkSchema(schemas.Order, view, { root: document }), order.sagaState).toEqual([]);
        for (const key of Object.keys(view)) expect(properties, `${order.sagaState}: ${key}`).toContain(key);
      }
    }
    // A cancel the customer asked for shows when, from the moment it is recorded.
    const placed = newOrder({ customerId: 'c-1', items: [{ sku: 'SKU-1', quantity: 2 }] }, orderId, t0).order;
    const cancelling = requestCancellation(placed, new Date(t0.getTime() + 1000));
    expect('changed' in cancelling && cancelling.changed).toBe(true);
    const view = JSON.parse(
      JSON.stringify(orderView((cancelling as { order: Order }).order, { kind: 'backOffice', via: 'iam' })),
    ) as Json;
    expect(view.cancelRequestedAt).toBe('2025-01-01T00:00:01.000Z');
    expect(checkSchema(schemas.Order, view, { root: document })).toEqual([]);
  });

  it('describes the product page exactly as GET /products shows it', () => {
    const product = {
      sku: 'SKU-1',
      name: 'Classic tee',
      unitPrice: 1200,
      currency: 'usd',
      available: 3,
      reserved: 1,
      lowStockThreshold: 0,
      updatedAt: '2025-01-01T00:00:00.000Z',
      version: 4,
      stocked: 5,
      sold: 1,
    };
    const page = { items: [productView(product)], nextCursor: 'eyJhZnRlciI6IlNLVS0xIn0' };
    expect(checkSchema(schemas.ProductPage, page, { root: document })).toEqual([]);
    const properties = Object.keys((schemas.Product as { properties: Json }).properties);
    expect(Object.keys(page.items[0]!).sort()).toEqual(properties.sort());
  });
});
