import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { HttpHandler } from '../../shared/http.ts';
import { serviceTable } from '../../tests/support/service-table.ts';
import { adjustStock } from './adjustments.ts';
import { dynamoInventoryRepository, type InventoryRepository } from './inventory-repository.ts';
import { releaseStock, reserveStock, type ReservationDeps } from './reservations.ts';

/*
 * The product routes as Lambda runs them (module-level configuration from the environment), against
 * the inventory table in DynamoDB Local: the ETag and If-Match of GET and PUT, and stock adjustments
 * with their Idempotency-Key.
 */

let raw: DynamoDBClient;
let client: DynamoDBDocumentClient;
let inventory: InventoryRepository;
let table: string;
let getProduct: HttpHandler;
let putProduct: HttpHandler;
let adjust: HttpHandler;

beforeAll(async () => {
  ({ raw, client, table } = await serviceTable('Inventory', (table) => ({
    INVENTORY_TABLE_NAME: table,
    RESERVATION_TTL_SECONDS: '900',
  })));
  inventory = dynamoInventoryRepository(client, table);
  ({ handler: getProduct } = await import('./get-product.ts'));
  ({ handler: putProduct } = await import('./put-product.ts'));
  ({ handler: adjust } = await import('./adjust-stock.ts'));
});

afterAll(() => {
  vi.unstubAllEnvs();
  raw?.destroy();
});

interface Answer {
  status: number;
  etag: string | undefined;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

async function call(
  handler: HttpHandler,
  request: { method: string; path: string; sku: string; body?: unknown; headers?: Record<string, string> },
): Promise<Answer> {
  const event = {
    version: '2.0',
    routeKey: `${request.method} ${request.path}`,
    rawPath: request.path.replace('{sku}', request.sku),
    rawQueryString: '',
    headers: { 'content-type': 'application/json', ...request.headers },
    requestContext: { http: { method: request.method, path: request.path } },
    pathParameters: { sku: request.sku },
    ...(request.body === undefined ? {} : { body: JSON.stringify(request.body) }),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
  const response = (await handler(event, {} as Context)) as APIGatewayProxyStructuredResultV2;
  return {
    status: response.statusCode!,
    etag: response.headers?.etag as string | undefined,
    body: JSON.parse(String(response.body)) as Answer['body'],
  };
}

const product = (available: number, more: Record<string, unknown> = {}) => ({
  name: 'Classic tee',
  unitPrice: 1000,
  currency: 'usd',
  available,
  ...more,
});
const get = (sku: string) => call(getProduct, { method: 'GET', path: '/products/{sku}', sku });
const put = (sku: string, body: unknown, headers: Record<string, string> = {}) =>
  call(putProduct, { method: 'PUT', path: '/products/{sku}', sku, body, headers });
const post = (sku: string, body: unknown, headers: Record<string, string> = {}) =>
  call(adjust, { method: 'POST', path: '/products/{sku}/stock-adjustments', sku, body, headers });

const sku = () => `sku-${randomUUID().slice(0, 8)}`;
const deps = (): ReservationDeps => ({ inventory, now: () => new Date(), ttlSeconds: 900 });
const reserve = (id: string, quantity: number, orderId = randomUUID()) =>
  reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity }] }).then(() => orderId);

/** The stored product, ledger and version included. */
const stored = (id: string) => inventory.getProduct(id);

async function created(available: number, lowStockThreshold?: number) {
  const id = sku();
  const answer = await put(id, product(available, lowStockThreshold ? { lowStockThreshold } : {}));
  expect(answer.status).toBe(200);
  return id;
}

describe('ETag and If-Match on GET and PUT /products/{sku}', () => {
  it("answers with the product's version as a strong ETag, which every PUT moves", async () => {
    const id = sku();
    const first = await put(id, product(10));
    expect(first).toMatchObject({ status: 200, etag: '"1"' });
    const read = await get(id);
    expect(read.etag).toBe('"1"');
    // The contract's view: the version is the ETag, never a field.
    expect(Object.keys(read.body).sort()).toEqual(
      [
        'sku',
        'name',
        'unitPrice',
        'currency',
        'available',
        'reserved',
        'lowStockThreshold',
        'updatedAt',
      ].sort(),
    );

    const second = await put(id, product(12, { name: 'Renamed' }), { 'if-match': read.etag! });
    expect(second).toMatchObject({ status: 200, etag: '"2"', body: { name: 'Renamed', available: 12 } });
    expect((await get(id)).etag).toBe('"2"');
    expect(await put(id, product(14))).toMatchObject({ status: 200, etag: '"3"' });
  });

  it('refuses a PUT whose ETag a reservation made stale with 412, and changes nothing', async () => {
    const id = await created(10);
    const { etag } = await get(id);
    await reserve(id, 2); // the stock moved since the admin read it

    const stale = await put(id, product(50), { 'if-match': etag! });
    expect(stale.status).toBe(412);
    expect(stale.body.error).toEqual({
      code: 'PRECONDITION_FAILED',
      message: `Product ${id} changed since it was read (its ETag is now "2"); read it again.`,
      details: [],
    });
    expect(await stored(id)).toMatchObject({ available: 8, reserved: 2, stocked: 10, version: 2 });

    const fresh = await get(id);
    expect(fresh).toMatchObject({ etag: '"2"', body: { available: 8, reserved: 2 } });
    expect(await put(id, product(50), { 'if-match': fresh.etag! })).toMatchObject({
      status: 200,
      etag: '"3"',
      body: { available: 50, reserved: 2 },
    });
    expect(await stored(id)).toMatchObject({ available: 50, reserved: 2, stocked: 52 });
  });

  it('lets exactly one of several PUTs with the same ETag through', async () => {
    const id = await created(10);
    const answers = await Promise.all(
      [20, 21, 22, 23, 24].map((available) => put(id, product(available), { 'if-match': '"1"' })),
    );
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 412, 412, 412, 412]);
    const winner = answers.find((answer) => answer.status === 200)!;
    expect(await stored(id)).toMatchObject({ available: winner.body.available, version: 2 });
  });

  it('never writes past the ETag while reservations race the PUT', async () => {
    const id = await created(40);
    const [answer] = await Promise.all([
      put(id, product(100), { 'if-match': '"1"' }),
      ...Array.from({ length: 5 }, () => reserve(id, 1)),
    ]);
    const after = (await stored(id))!;
    expect(after.reserved).toBe(5);
    expect(after.available + after.reserved + after.sold!).toBe(after.stocked);
    // It either wrote at version 1, before every reservation, or wrote nothing.
    expect([200, 412]).toContain(answer!.status);
    expect(after.available).toBe(answer!.status === 200 ? 95 : 35);
  });

  it('with If-Match: * replaces an existing product only; a missing one is 412 and is not created', async () => {
    const missing = sku();
    for (const ifMatch of ['*', '"0"', '"1"']) {
      const answer = await put(missing, product(5), { 'if-match': ifMatch });
      expect(answer.status, ifMatch).toBe(412);
      expect(answer.body.error).toMatchObject({
        code: 'PRECONDITION_FAILED',
        message: `Product ${missing} does not exist, so If-Match cannot match it.`,
      });
    }
    expect((await get(missing)).status).toBe(404);

    const id = await created(5);
    expect(await put(id, product(6), { 'if-match': '*' })).toMatchObject({ status: 200, etag: '"2"' });
  });

  it('answers an If-Match that names no version of ours with 412, as a mismatch', async () => {
    const id = await created(5);
    // Weak tags never match strongly (RFC 9110 §8.8.3.2); lists and other tags are not ours.
    for (const ifMatch of ['W/"1"', '"1", "2"', '"1","1"', '1', '"01"', '"abc"', '""', '', '**']) {
      const answer = await put(id, product(9), { 'if-match': ifMatch });
      expect(answer.status, ifMatch).toBe(412);
      expect(answer.body.error?.code, ifMatch).toBe('PRECONDITION_FAILED');
    }
    expect(await stored(id)).toMatchObject({ available: 5, version: 1 });
  });
});

describe('POST /products/{sku}/stock-adjustments', () => {
  it('adds and removes units, with the ledger in step and a new ETag each time', async () => {
    const id = await created(10);
    const added = await post(id, { delta: 5, reason: 'delivery 4711' });
    expect(added).toMatchObject({ status: 200, etag: '"2"', body: { sku: id, available: 15, reserved: 0 } });
    expect(Object.keys(added.body).sort()).toEqual(Object.keys((await get(id)).body).sort());
    const removed = await post(id, { delta: -3 });
    expect(removed).toMatchObject({ status: 200, etag: '"3"', body: { available: 12 } });
    expect(await stored(id)).toMatchObject({ available: 12, reserved: 0, sold: 0, stocked: 12, version: 3 });
    expect((await get(id)).etag).toBe('"3"');
  });

  it('refuses to go below zero with 409 INSUFFICIENT_STOCK and changes nothing', async () => {
    const id = await created(4);
    await reserve(id, 1);
    const before = await stored(id);
    const answer = await post(id, { delta: -4 });
    expect(answer).toMatchObject({ status: 409, etag: undefined });
    expect(answer.body.error).toEqual({
      code: 'INSUFFICIENT_STOCK',
      message: `Product ${id} has 3 units available; removing 4 would leave fewer than none.`,
      details: [],
    });
    expect(await stored(id)).toEqual(before);
    expect(await post(id, { delta: -3 })).toMatchObject({ status: 200, body: { available: 0, reserved: 1 } });
  });

  it('answers an unknown sku with 404, whatever its If-Match or Idempotency-Key', async () => {
    const missing = sku();
    const variants: Array<Record<string, string>> = [
      {},
      { 'if-match': '"0"' },
      { 'if-match': '*' },
      { 'idempotency-key': 'k-1' },
    ];
    for (const headers of variants) {
      const answer = await post(missing, { delta: 1 }, headers);
      expect(answer.status, JSON.stringify(headers)).toBe(404);
      expect(answer.body.error?.code).toBe('PRODUCT_NOT_FOUND');
    }
    expect(await stored(missing)).toBeUndefined();
  });

  it('honours If-Match: a stale ETag is 412 with nothing changed, the current one goes through', async () => {
    const id = await created(10);
    const { etag } = await get(id);
    await reserve(id, 1);
    const stale = await post(id, { delta: -2 }, { 'if-match': etag! });
    expect(stale.status).toBe(412);
    expect(stale.body.error?.code).toBe('PRECONDITION_FAILED');
    expect(await stored(id)).toMatchObject({ available: 9, version: 2 });
    // A stale ETag is judged before the units: 412, not 409.
    expect((await post(id, { delta: -100 }, { 'if-match': etag! })).status).toBe(412);
    expect((await post(id, { delta: 1 }, { 'if-match': 'W/"2"' })).status).toBe(412);

    expect(await post(id, { delta: -2 }, { 'if-match': '"2"' })).toMatchObject({
      status: 200,
      etag: '"3"',
      body: { available: 7 },
    });
    expect(await post(id, { delta: 1 }, { 'if-match': '*' })).toMatchObject({ status: 200, etag: '"4"' });
  });

  it('with an Idempotency-Key adjusts once, however often (and however concurrently) it is retried', async () => {
    const id = await created(10);
    const key = { 'idempotency-key': `restock-${randomUUID()}` };
    const body = { delta: 5, reason: 'delivery 4711' };
    const answers = await Promise.all([post(id, body, key), post(id, body, key), post(id, body, key)]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
    expect(await stored(id)).toMatchObject({ available: 15, stocked: 15, version: 2 });

    // Later, after the stock moved: the current product, and still nothing added.
    await reserve(id, 3);
    const repeat = await post(id, { reason: 'delivery 4711', delta: 5 }, { ...key, 'if-match': '"1"' });
    expect(repeat).toMatchObject({ status: 200, etag: '"3"', body: { available: 12, reserved: 3 } });
    expect(await stored(id)).toMatchObject({ available: 12, reserved: 3, stocked: 15, version: 3 });

    const record = await client.send(
      new GetCommand({
        TableName: table,
        Key: { pk: `PRODUCT#${id}`, sk: `ADJUSTMENT#${key['idempotency-key']}` },
      }),
    );
    expect(record.Item).toEqual({
      pk: `PRODUCT#${id}`,
      sk: `ADJUSTMENT#${key['idempotency-key']}`,
      kind: 'adjustment',
      sku: id,
      idempotencyKey: key['idempotency-key'],
      delta: 5,
      reason: 'delivery 4711',
      requestHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      createdAt: expect.stringMatching(/Z$/),
      expiresAt: Math.floor(Date.parse(String(record.Item?.createdAt)) / 1000) + 24 * 3600,
    });
  });

  it('answers the same key with another body 409 IDEMPOTENCY_KEY_REUSED, and changes nothing', async () => {
    const id = await created(10);
    const key = { 'idempotency-key': 'count-2025-06' };
    expect((await post(id, { delta: -2, reason: 'stocktake' }, key)).status).toBe(200);
    for (const body of [{ delta: -3, reason: 'stocktake' }, { delta: -2 }, { delta: -2, reason: 'other' }]) {
      const answer = await post(id, body, key);
      expect(answer.status, JSON.stringify(body)).toBe(409);
      expect(answer.body.error).toEqual({
        code: 'IDEMPOTENCY_KEY_REUSED',
        message: 'This Idempotency-Key was already used with a different request body.',
        details: [],
      });
    }
    expect(await stored(id)).toMatchObject({ available: 8, version: 2 });
    // A key belongs to one product: the same key elsewhere is another key.
    const other = await created(1);
    expect(await post(other, { delta: 4 }, key)).toMatchObject({ status: 200, body: { available: 5 } });
  });

  it('keeps no key for a refused adjustment: its retry is judged afresh', async () => {
    const id = await created(3);
    const key = { 'idempotency-key': `take-${randomUUID()}` };
    expect((await post(id, { delta: -5 }, key)).status).toBe(409);
    expect((await post(id, { delta: 2 })).status).toBe(200);
    expect(await post(id, { delta: -5 }, key)).toMatchObject({ status: 200, body: { available: 0 } });
    expect(await post(id, { delta: -5 }, key)).toMatchObject({ status: 200, body: { available: 0 } });
    expect(await stored(id)).toMatchObject({ available: 0, stocked: 0 });
  });

  it('lets a key go once its 24 hours are over, even before TTL deletes its record', async () => {
    const id = await created(3);
    const now = Date.now();
    const at = (offsetMs: number) => adjustStock({ inventory, now: () => new Date(now + offsetMs) });
    expect(await at(0)(id, { delta: 1 }, { idempotencyKey: 'daily' })).toMatchObject({ outcome: 'ADJUSTED' });
    expect(await at(23 * 3600_000)(id, { delta: 2 }, { idempotencyKey: 'daily' })).toEqual({
      outcome: 'KEY_REUSED',
    });
    expect(await at(25 * 3600_000)(id, { delta: 2 }, { idempotencyKey: 'daily' })).toMatchObject({
      outcome: 'ADJUSTED',
      product: { available: 6 },
    });
  });

  it('keeps the ledger exact while adjustments race reservations and releases', async () => {
    const id = await created(40);
    const orders = await Promise.all(Array.from({ length: 4 }, () => reserve(id, 2)));
    const [, adjusted] = await Promise.all([
      Promise.all(orders.map((orderId) => releaseStock(deps())(orderId))),
      Promise.all([3, -4, 5, -6, 1].map((delta) => post(id, { delta }))),
      Promise.all(Array.from({ length: 4 }, () => reserve(id, 1))),
    ]);
    expect(adjusted.map((answer) => answer.status)).toEqual([200, 200, 200, 200, 200]);
    // 40 in, 8 held and given back, 4 held, and the adjustments' -1.
    expect(await stored(id)).toMatchObject({ available: 35, reserved: 4, sold: 0, stocked: 39 });
  });

  it('rejects an invalid body or Idempotency-Key with 400 and changes nothing', async () => {
    const id = await created(5);
    for (const body of [
      { delta: 0 },
      { delta: 1.5 },
      { delta: '5' },
      { delta: 1_000_000_001 },
      { delta: -1_000_000_001 },
      {},
      { delta: 1, reason: '' },
      { delta: 1, reason: 'x'.repeat(201) },
      { delta: 1, note: 'unknown fields are refused' },
    ]) {
      const answer = await post(id, body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.error?.code).toBe('VALIDATION_FAILED');
    }
    for (const key of ['', 'k'.repeat(256)]) {
      expect((await post(id, { delta: 1 }, { 'idempotency-key': key })).status, key).toBe(400);
    }
    expect(await post(id, { delta: 1, reason: 'x'.repeat(200) })).toMatchObject({ status: 200 });
    expect(await post(id, { delta: -1_000_000_000 })).toMatchObject({ status: 409 });
    expect(await stored(id)).toMatchObject({ available: 6, version: 2 });
  });
});
