import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { HttpHandler } from '../../shared/http.ts';
import { serviceTable } from '../../tests/support/service-table.ts';
import { dynamoInventoryRepository, type InventoryRepository } from './inventory-repository.ts';
import { reserveStock } from './reservations.ts';

/*
 * GET /products as Lambda runs it, against an inventory table of its own in DynamoDB Local (so the
 * catalogue holds exactly the products put here), with reservations in the same table beside them.
 */

let raw: DynamoDBClient;
let inventory: InventoryRepository;
let listProducts: HttpHandler;

beforeAll(async () => {
  let client: DynamoDBDocumentClient;
  let table: string;
  ({ raw, client, table } = await serviceTable('Inventory', (table) => ({
    INVENTORY_TABLE_NAME: table,
    RESERVATION_TTL_SECONDS: '900',
  })));
  inventory = dynamoInventoryRepository(client, table);
  ({ handler: listProducts } = await import('./list-products.ts'));
});

afterAll(() => {
  vi.unstubAllEnvs();
  raw?.destroy();
});

interface Page {
  items: Array<Record<string, unknown> & { sku: string }>;
  nextCursor?: string;
}

async function list(query: Record<string, string> = {}) {
  const event = {
    version: '2.0',
    routeKey: 'GET /products',
    rawPath: '/products',
    rawQueryString: new URLSearchParams(query).toString(),
    headers: {},
    requestContext: { http: { method: 'GET', path: '/products' } },
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    isBase64Encoded: false,
  } as unknown as APIGatewayProxyEventV2;
  const response = (await listProducts(event, {} as Context)) as APIGatewayProxyStructuredResultV2;
  return {
    status: response.statusCode!,
    body: JSON.parse(String(response.body)) as Page & { error?: { code: string } },
  };
}

/** Every page from the first, following nextCursor. */
async function allPages(limit: number) {
  const pages: Page[] = [];
  let cursor: string | undefined;
  do {
    const answer = await list({ limit: String(limit), ...(cursor ? { cursor } : {}) });
    expect(answer.status).toBe(200);
    pages.push(answer.body);
    cursor = answer.body.nextCursor;
  } while (cursor);
  return pages;
}

const put = (sku: string, available = 10) =>
  inventory.putProduct(
    sku,
    { name: `Product ${sku}`, unitPrice: 1000, currency: 'usd', available },
    new Date(),
  );

// Mixed case and punctuation: the order is DynamoDB's, byte order.
const SKUS = ['b-2', 'A-1', 'c.3', 'Z_9', 'a-0', 'd-4', 'e-5'];
const sorted = [...SKUS].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

describe('GET /products', () => {
  beforeAll(async () => {
    for (const sku of SKUS) await put(sku);
    // Reservations share the table: they must never show up in the catalogue.
    await reserveStock({ inventory, now: () => new Date(), ttlSeconds: 900 })({
      orderId: randomUUID(),
      currency: 'usd',
      items: [{ sku: 'c.3', quantity: 4 }],
    });
  });

  it('lists the catalogue in SKU order, three pages of three, with no duplicates and no gaps', async () => {
    const pages = await allPages(3);
    expect(pages.map((page) => page.items.length)).toEqual([3, 3, 1]);
    expect(pages.at(-1)!.nextCursor).toBeUndefined();
    const skus = pages.flatMap((page) => page.items.map((item) => item.sku));
    expect(skus).toEqual(sorted);
    expect(new Set(skus).size).toBe(SKUS.length);
  });

  it('shows each product as GET /products/{sku} does, its stock current, without the ledger or version', async () => {
    const { body } = await list({ limit: '100' });
    expect(body.nextCursor).toBeUndefined();
    expect(body.items.find((item) => item.sku === 'c.3')).toEqual({
      sku: 'c.3',
      name: 'Product c.3',
      unitPrice: 1000,
      currency: 'usd',
      available: 6,
      reserved: 4,
      lowStockThreshold: 0,
      updatedAt: expect.stringMatching(/Z$/),
    });
  });

  it('pages of exactly the rest end without a cursor, and the default page holds 50', async () => {
    const exact = await allPages(SKUS.length);
    expect(exact).toHaveLength(1);
    expect(exact[0]!.items).toHaveLength(SKUS.length);
    const { body } = await list();
    expect(body.items.map((item) => item.sku)).toEqual(sorted);
    expect(body.nextCursor).toBeUndefined();
  });

  it('continues after the last SKU it served: a product added meanwhile appears in its place', async () => {
    const first = await list({ limit: '3' });
    await put('b-3');
    const rest = await allPagesFrom(first.body.nextCursor!, 3);
    const skus = [...first.body.items, ...rest].map((item) => item.sku);
    expect(skus).toEqual([...sorted, 'b-3'].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
  });

  it.each([
    ['not base64 JSON', 'not-a-cursor'],
    ['JSON of another shape', Buffer.from(JSON.stringify({ by: 'sku', value: 'a' })).toString('base64url')],
    ['a SKU no product can have', Buffer.from(JSON.stringify({ after: 'a b' })).toString('base64url')],
    [
      'a reservations cursor',
      Buffer.from(JSON.stringify({ by: 'orderId', value: 'o', after: 'a' })).toString('base64url'),
    ],
  ])('refuses a cursor that is %s with 400 INVALID_CURSOR', async (_what, cursor) => {
    const answer = await list({ cursor });
    expect(answer.status).toBe(400);
    expect(answer.body.error?.code).toBe('INVALID_CURSOR');
  });

  it.each([{ limit: '0' }, { limit: '101' }, { limit: 'ten' }, { limit: '2.5' }, { sku: 'a-0' }] as Array<
    Record<string, string>
  >)('refuses %o with 400 VALIDATION_FAILED', async (query) => {
    const answer = await list(query);
    expect(answer.status).toBe(400);
    expect(answer.body.error?.code).toBe('VALIDATION_FAILED');
  });
});

async function allPagesFrom(cursor: string, limit: number) {
  const items: Page['items'] = [];
  let next: string | undefined = cursor;
  while (next) {
    const answer = await list({ limit: String(limit), cursor: next });
    expect(answer.status).toBe(200);
    items.push(...answer.body.items);
    next = answer.body.nextCursor;
  }
  return items;
}
