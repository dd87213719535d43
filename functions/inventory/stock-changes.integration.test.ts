import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { DeleteCommand, DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startStreamPoller, type StreamPoller } from '../../infra/local/stream-poller.ts';
import { createTables, tableName, templateTables } from '../../infra/local/tables.ts';
import { synthesizeTemplate } from '../../infra/local/template.ts';
import { ValidationError } from '../../shared/errors.ts';
import { pollUntil } from '../../tests/support/poll.ts';
import { adjustStock } from './adjustments.ts';
import { dynamoInventoryRepository, type InventoryRepository } from './inventory-repository.ts';
import { queryReservations } from './reservation-queries.ts';
import { confirmStock, releaseStock, reserveStock, type ReservationDeps } from './reservations.ts';
import { reactToStockChanges, STOCK_CHANGES_FILTER } from './stock-changes.ts';

/*
 * The inventory service's reactions to its own stream, on the real engine: DynamoDB Local's stream
 * read by the local event source mapping with the stack's filter, into the real reaction code.
 */

let client: DynamoDBDocumentClient;
let streams: DynamoDBStreamsClient;
let inventory: InventoryRepository;
let table: string;
let poller: StreamPoller;
const delivered: DynamoDBRecord[] = [];
const failures: unknown[] = [];

const deps = (ttlSeconds = 900): ReservationDeps => ({ inventory, now: () => new Date(), ttlSeconds });
const react = () => reactToStockChanges({ ...deps(), onError: (error) => failures.push(error) });

beforeAll(async () => {
  const endpoint = inject('dynamodbEndpoint');
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const raw = new DynamoDBClient({ endpoint, region: 'us-east-1', credentials });
  client = DynamoDBDocumentClient.from(raw);
  streams = new DynamoDBStreamsClient({ endpoint, region: 'us-east-1', credentials });
  const prefix = `sc-${randomUUID().slice(0, 6)}-`;
  const tables = templateTables(await synthesizeTemplate({})).filter((t) =>
    t.logicalId.startsWith('Inventory'),
  );
  const arns = await createTables(raw, tables, prefix);
  table = tableName(tables[0]!.logicalId, prefix);
  inventory = dynamoInventoryRepository(client, table);
  poller = startStreamPoller({
    client: streams,
    streamArn: arns.get(tables[0]!.logicalId)!,
    filterCriteria: { Filters: [{ Pattern: JSON.stringify(STOCK_CHANGES_FILTER) }] },
    reportBatchItemFailures: true,
    retryDelayMs: 50,
    invoke: async (event) => {
      delivered.push(...event.Records);
      return react()(event);
    },
    onError: (error) => failures.push(error),
  });
});

afterAll(async () => {
  await poller?.stop();
  streams?.destroy();
  expect(failures).toEqual([]);
});

const sku = () => `sku-${randomUUID().slice(0, 8)}`;
const order = () => randomUUID();

async function stock(units: number, lowStockThreshold?: number) {
  const id = sku();
  await inventory.putProduct(
    id,
    {
      name: id,
      unitPrice: 500,
      currency: 'usd',
      available: units,
      ...(lowStockThreshold ? { lowStockThreshold } : {}),
    },
    new Date(),
  );
  return id;
}

const reserve = (orderId: string, items: Array<{ sku: string; quantity: number }>, ttlSeconds?: number) =>
  reserveStock(deps(ttlSeconds))({ orderId, currency: 'usd', items });

async function outbox(pk: string) {
  const { Items } = await client.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :events)',
      ExpressionAttributeValues: { ':pk': pk, ':events': 'EVENT#' },
    }),
  );
  return (Items ?? []).map(
    (item) => JSON.parse(String(item.event)) as { id: string; type: string; data: unknown },
  );
}

const query = (
  filter: { orderId?: string; sku?: string; limit?: number; cursor?: string },
  now = new Date(),
) => queryReservations({ inventory, now: () => now })({ limit: 50, ...filter });

describe('GET /inventory/reservations', () => {
  it("lists an order's lines at once, and a SKU's lines from the index, a page at a time", async () => {
    const [shirt, socks] = [await stock(20), await stock(20)];
    const first = order();
    await reserve(first, [
      { sku: shirt, quantity: 2 },
      { sku: socks, quantity: 3 },
    ]);
    const byOrder = await query({ orderId: first });
    expect(byOrder.nextCursor).toBeUndefined();
    expect(byOrder.items).toEqual(
      [
        { sku: shirt, quantity: 2 },
        { sku: socks, quantity: 3 },
      ]
        .sort((a, b) => a.sku.localeCompare(b.sku))
        .map((line) => ({
          ...line,
          orderId: first,
          reservationId: expect.any(String),
          status: 'ACTIVE',
          expiresAt: expect.stringMatching(/Z$/),
          createdAt: expect.stringMatching(/Z$/),
        })),
    );

    const later = [order(), order()];
    for (const orderId of later) await reserve(orderId, [{ sku: shirt, quantity: 1 }]);
    const all = [first, ...later];
    await pollUntil(
      'three lines indexed',
      () => query({ sku: shirt }),
      (page) => page.items.length === 3,
    );

    const page1 = await query({ sku: shirt, limit: 2 });
    expect(page1.items.map((line) => line.orderId)).toEqual([all[2], all[1]]); // newest first
    expect(page1.nextCursor).toEqual(expect.any(String));
    const page2 = await query({ sku: shirt, limit: 2, cursor: page1.nextCursor! });
    expect(page2.items.map((line) => line.orderId)).toEqual([all[0]]);
    expect(page2.nextCursor).toBeUndefined();

    const orderPage = await query({ orderId: first, limit: 1 });
    expect(orderPage.items).toHaveLength(1);
    const rest = await query({ orderId: first, limit: 1, cursor: orderPage.nextCursor! });
    expect([...orderPage.items, ...rest.items].map((line) => line.sku)).toEqual(
      byOrder.items.map((l) => l.sku),
    );
    expect(rest.nextCursor).toBeUndefined();
  });

  it('follows each reservation to CONFIRMED or RELEASED in the SKU index', async () => {
    const id = await stock(10);
    const [sold, compensated] = [order(), order()];
    await reserve(sold, [{ sku: id, quantity: 1 }]);
    await reserve(compensated, [{ sku: id, quantity: 2 }]);
    await confirmStock(deps())(sold);
    await releaseStock(deps())(compensated);
    const page = await pollUntil(
      'statuses indexed',
      () => query({ sku: id }),
      (result) => result.items.every((line) => line.status !== 'ACTIVE') && result.items.length === 2,
    );
    expect(Object.fromEntries(page.items.map((line) => [line.orderId, line.status]))).toEqual({
      [sold]: 'CONFIRMED',
      [compensated]: 'RELEASED',
    });
  });

  it('never shows a sale as EXPIRED, however far the SKU index trails the reservation', async () => {
    const id = await stock(5);
    const orderId = order();
    await reserve(orderId, [{ sku: id, quantity: 1 }]);
    await pollUntil(
      'the line indexed',
      () => query({ sku: id }),
      (page) => page.items.length === 1,
    );
    await confirmStock(deps())(orderId);
    // Straight away (the index may still say ACTIVE) and an hour after the hold would have ended.
    const inAnHour = new Date(Date.now() + 3_600_000);
    expect((await query({ sku: id }, inAnHour)).items.map((line) => line.status)).toEqual(['CONFIRMED']);
    expect((await query({ orderId }, inAnHour)).items.map((line) => line.status)).toEqual(['CONFIRMED']);
  });

  it('shows a hold whose time has passed as EXPIRED before the sweeper gets to it', async () => {
    const id = await stock(5);
    const orderId = order();
    await reserve(orderId, [{ sku: id, quantity: 1 }]);
    const inAnHour = new Date(Date.now() + 3_600_000);
    expect((await query({ orderId }, inAnHour)).items[0]).toMatchObject({ status: 'EXPIRED' });
    expect((await query({ orderId })).items[0]).toMatchObject({ status: 'ACTIVE' });
  });

  it('answers an unknown order or SKU with no lines, and a rejected attempt with none either', async () => {
    expect(await query({ orderId: order() })).toEqual({ items: [] });
    expect(await query({ sku: sku() })).toEqual({ items: [] });
    const rejected = order();
    await reserve(rejected, [{ sku: await stock(1), quantity: 2 }]);
    expect(await query({ orderId: rejected })).toEqual({ items: [] });
  });

  it('refuses a cursor it did not issue for this filter', async () => {
    const id = await stock(10);
    for (let i = 0; i < 2; i++) await reserve(order(), [{ sku: id, quantity: 1 }]);
    const page = await pollUntil(
      'two lines indexed',
      () => query({ sku: id, limit: 1 }),
      (result) => result.nextCursor !== undefined,
    );
    for (const [filter, cursor] of [
      [{ sku: sku() }, page.nextCursor!],
      [{ orderId: order() }, page.nextCursor!],
      [{ sku: id }, 'not-a-cursor'],
      [{ sku: id }, Buffer.from('{"by":"sku","value":"x","key":{}}').toString('base64url')],
      [
        { sku: id },
        Buffer.from(
          JSON.stringify({ by: 'sku', value: id, key: { pk: '', sk: '', lineSku: id, lineSort: '' } }),
        ).toString('base64url'),
      ],
    ] as const) {
      await expect(query({ ...filter, cursor })).rejects.toSatisfy(
        (error) => error instanceof ValidationError && error.code === 'INVALID_CURSOR',
      );
    }
  });
});

describe('a reservation deleted by TTL', () => {
  it('comes back as EXPIRED with its stock returned once, however often the deletion is delivered', async () => {
    const id = await stock(6);
    const orderId = order();
    await reserve(orderId, [{ sku: id, quantity: 4 }]);
    const heldAt = (await inventory.getProduct(id))!.version!;
    // What DynamoDB's TTL does a day after the hold ended if the sweeper never released it.
    await client.send(
      new DeleteCommand({ TableName: table, Key: { pk: `RESERVATION#${orderId}`, sk: 'RESERVATION' } }),
    );

    const restored = await pollUntil(
      'the reservation put back',
      () => inventory.getReservation(orderId),
      (reservation) => reservation?.status === 'EXPIRED',
    );
    expect(restored).toMatchObject({ status: 'EXPIRED', lines: [{ sku: id, quantity: 4 }] });
    expect(restored?.expiresAt).toBeUndefined();
    const { Item: stored } = await client.send(
      new GetCommand({ TableName: table, Key: { pk: `RESERVATION#${orderId}`, sk: 'RESERVATION' } }),
    );
    expect(stored).not.toHaveProperty('activeShard'); // out of the sweeper's index for good
    expect(stored).not.toHaveProperty('activeUntil');
    // Returning the stock is a write of the product like any other: it moves the ETag.
    expect(await inventory.getProduct(id)).toMatchObject({ available: 6, reserved: 0, version: heldAt + 1 });

    // Stream records come at least once: deliver the deletion again, twice at once.
    const removal = delivered.find(
      (record) => record.eventName === 'REMOVE' && record.dynamodb?.Keys?.pk?.S === `RESERVATION#${orderId}`,
    )!;
    const again = await Promise.all([react()({ Records: [removal] }), react()({ Records: [removal] })]);
    expect(again).toEqual([{ batchItemFailures: [] }, { batchItemFailures: [] }]);
    expect(await inventory.getProduct(id)).toMatchObject({ available: 6, reserved: 0, version: heldAt + 1 });
    const released = (await outbox(`RESERVATION#${orderId}`)).filter(
      (event) => event.type === 'inventory.released',
    );
    expect(released.map((event) => event.data)).toEqual([
      expect.objectContaining({ orderId, reason: 'EXPIRED', items: [{ sku: id, quantity: 4 }] }),
    ]);
    await pollUntil(
      'the line shows EXPIRED',
      () => query({ sku: id }),
      (page) => page.items[0]?.status === 'EXPIRED',
    );
  });

  it('changes nothing when the reservation had already been released', async () => {
    const id = await stock(3);
    const orderId = order();
    await reserve(orderId, [{ sku: id, quantity: 2 }]);
    await releaseStock(deps())(orderId);
    await client.send(
      new DeleteCommand({ TableName: table, Key: { pk: `RESERVATION#${orderId}`, sk: 'RESERVATION' } }),
    );
    await pollUntil(
      'the deletion delivered',
      async () =>
        delivered.some(
          (r) => r.eventName === 'REMOVE' && r.dynamodb?.Keys?.pk?.S === `RESERVATION#${orderId}`,
        ),
      Boolean,
    );
    await poller.drained();
    expect(await inventory.getReservation(orderId)).toBeUndefined();
    expect(await inventory.getProduct(id)).toMatchObject({ available: 3, reserved: 0 });
  });
});

describe('inventory.low_stock', () => {
  const lowStockEvents = async (id: string) =>
    (await outbox(`PRODUCT#${id}`)).filter((event) => event.type === 'inventory.low_stock');
  const alertsOf = async (id: string) =>
    (await lowStockEvents(id))
      .map((event) => event.data as { available: number })
      // Events of one second sort by id in the table; the stream keeps their order.
      .sort((a, b) => b.available - a.available);

  it('fires once when available crosses below the threshold, and again only after it recovered', async () => {
    const id = await stock(8, 5);
    await reserve(order(), [{ sku: id, quantity: 2 }]); // 6: not below 5
    const crossing = order();
    await reserve(crossing, [{ sku: id, quantity: 2 }]); // 4: crosses
    await reserve(order(), [{ sku: id, quantity: 1 }]); // 3: still below, no second alert
    await releaseStock(deps())(crossing); // 5: recovered (not below)
    await reserve(order(), [{ sku: id, quantity: 3 }]); // 2: crosses again
    const events = await pollUntil(
      'two alerts',
      () => lowStockEvents(id),
      (found) => found.length === 2,
    );
    await poller.drained();
    expect(await alertsOf(id)).toEqual([
      { sku: id, available: 4, threshold: 5 },
      { sku: id, available: 2, threshold: 5 },
    ]);
    expect(events.every((event) => (event as { subject?: string }).subject === id)).toBe(true);
  });

  it('alerts every crossing even when they follow each other faster than the stream is read', async () => {
    const id = await stock(10, 5);
    const [first, second] = [order(), order()];
    await reserve(first, [{ sku: id, quantity: 6 }]); // 4: crosses
    await releaseStock(deps())(first); // 10
    await reserve(second, [{ sku: id, quantity: 6 }]); // 4: crosses again
    await pollUntil(
      'two alerts',
      () => lowStockEvents(id),
      (found) => found.length === 2,
    );
    await poller.drained();
    expect(await lowStockEvents(id)).toHaveLength(2);
  });

  it('fires when a PUT sets stock below the threshold or raises the threshold above it; never with a threshold of 0', async () => {
    const alerted = await stock(10, 3);
    const put = (sku: string, available: number, lowStockThreshold?: number) =>
      inventory.putProduct(
        sku,
        {
          name: sku,
          unitPrice: 500,
          currency: 'usd',
          available,
          ...(lowStockThreshold ? { lowStockThreshold } : {}),
        },
        new Date(),
      );
    await put(alerted, 1, 3); // crosses by stock
    const raised = await stock(4, 2);
    await put(raised, 4, 5); // crosses by threshold
    const quiet = await stock(1);
    await reserve(order(), [{ sku: quiet, quantity: 1 }]); // 0 available, threshold 0
    await pollUntil(
      'the alert',
      () => lowStockEvents(alerted),
      (events) => events.length === 1,
    );
    await pollUntil(
      'the alert',
      () => lowStockEvents(raised),
      (events) => events.length === 1,
    );
    await poller.drained();
    expect(await lowStockEvents(quiet)).toEqual([]);
    expect(await alertsOf(raised)).toEqual([{ sku: raised, available: 4, threshold: 5 }]);
  });

  it('fires once when a stock adjustment takes available below the threshold; the key records set off nothing', async () => {
    const id = await stock(8, 5);
    const adjust = adjustStock(deps());
    const key = `count-${id}`;
    expect(await adjust(id, { delta: -2 }, { idempotencyKey: `${key}-1` })).toMatchObject({
      outcome: 'ADJUSTED',
      product: { available: 6 }, // not below 5
    });
    expect(await adjust(id, { delta: -3, reason: 'damaged' }, { idempotencyKey: `${key}-2` })).toMatchObject({
      outcome: 'ADJUSTED',
      product: { available: 3 }, // crosses
    });
    // A retry of the crossing adjusts nothing, so it alerts nothing; 2 is still below: no second alert.
    expect(await adjust(id, { delta: -3, reason: 'damaged' }, { idempotencyKey: `${key}-2` })).toMatchObject({
      outcome: 'REPEATED',
    });
    expect(await adjust(id, { delta: -1 })).toMatchObject({ outcome: 'ADJUSTED', product: { available: 2 } });
    expect(await adjust(id, { delta: -5 })).toEqual({ outcome: 'INSUFFICIENT_STOCK', available: 2 });
    await pollUntil(
      'the alert',
      () => lowStockEvents(id),
      (events) => events.length === 1,
    );
    await pollUntil(
      'every product change delivered',
      async () => delivered.filter((record) => record.dynamodb?.Keys?.pk?.S === `PRODUCT#${id}`).length,
      (changes) => changes >= 4, // the PUT and three adjustments
    );
    await poller.drained();
    expect(await alertsOf(id)).toEqual([{ sku: id, available: 3, threshold: 5 }]);
    const fromThisProduct = delivered.filter((record) => record.dynamodb?.Keys?.pk?.S === `PRODUCT#${id}`);
    expect(fromThisProduct.map((record) => record.dynamodb?.Keys?.sk?.S)).toEqual(
      fromThisProduct.map(() => 'PRODUCT'),
    );
  });

  it('a whole history delivered again, as after a failed batch, alerts nothing more', async () => {
    const id = await stock(4, 4);
    const [a, b] = [order(), order()];
    await reserve(a, [{ sku: id, quantity: 1 }]); // 3: crosses
    await reserve(b, [{ sku: id, quantity: 1 }]); // 2: still low
    await releaseStock(deps())(a);
    await releaseStock(deps())(b); // 4: recovered
    await pollUntil(
      'the alert',
      () => lowStockEvents(id),
      (events) => events.length === 1,
    );
    await poller.drained();

    const changes = delivered.filter((record) => record.dynamodb?.Keys?.pk?.S === `PRODUCT#${id}`);
    expect(changes.length).toBeGreaterThanOrEqual(5);
    expect(await react()({ Records: changes })).toEqual({ batchItemFailures: [] });
    expect(await react()({ Records: changes.slice(2) })).toEqual({ batchItemFailures: [] });
    await poller.drained();
    expect(await alertsOf(id)).toEqual([{ sku: id, available: 3, threshold: 4 }]);
  });
});
