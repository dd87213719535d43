import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createTables, tableName, templateTables } from '../../infra/local/tables.ts';
import { pollUntil } from '../../tests/support/poll.ts';
import { synthesizeTemplate } from '../../infra/local/template.ts';
import { dynamoInventoryRepository, type InventoryRepository } from './inventory-repository.ts';
import {
  confirmStock,
  releaseStock,
  reserveStock,
  sweepExpired,
  TTL_GRACE_SECONDS,
  type ReservationDeps,
} from './reservations.ts';
import { ReservationConfirmedError, ReservationExpiredError, type PutProductRequest } from './stock.ts';

/*
 * The inventory rules against the real engine: DynamoDB Local, with the inventory table exactly as
 * the stack defines it (synthesized, then created from the template).
 */

let client: DynamoDBDocumentClient;
let inventory: InventoryRepository;
let table: string;

beforeAll(async () => {
  const raw = new DynamoDBClient({
    endpoint: inject('dynamodbEndpoint'),
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  client = DynamoDBDocumentClient.from(raw);
  const prefix = `it-${randomUUID().slice(0, 6)}-`;
  const inventoryTable = templateTables(await synthesizeTemplate({})).filter((t) =>
    t.logicalId.startsWith('Inventory'),
  );
  await createTables(raw, inventoryTable, prefix);
  table = tableName(inventoryTable[0]!.logicalId, prefix);
  inventory = dynamoInventoryRepository(client, table);
});

const deps = (ttlSeconds = 900): ReservationDeps => ({ inventory, now: () => new Date(), ttlSeconds });
const sku = () => `sku-${randomUUID().slice(0, 8)}`;
const order = () => randomUUID();

async function stock(units: number, price = 1000) {
  const id = sku();
  await inventory.putProduct(
    id,
    { name: id, unitPrice: price, currency: 'usd', available: units },
    new Date(),
  );
  return id;
}

/** A PUT without a precondition, which is never refused. */
async function put(id: string, request: PutProductRequest) {
  const result = await inventory.putProduct(id, request, new Date());
  if (result.outcome !== 'PUT') throw new Error(`unconditional PUT answered ${result.outcome}`);
  return result;
}

async function levels(id: string) {
  const product = await inventory.getProduct(id);
  return { available: product!.available, reserved: product!.reserved };
}

async function eventsOf(orderId: string) {
  const { Items } = await client.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: 'pk = :pk AND begins_with(sk, :events)',
      ExpressionAttributeValues: { ':pk': `RESERVATION#${orderId}`, ':events': 'EVENT#' },
    }),
  );
  return (Items ?? []).map(
    (item) => JSON.parse(String(item.event)) as { type: string; data: Record<string, unknown> },
  );
}

describe('reserving stock', () => {
  it('never oversells: 20 orders racing for 5 units reserve exactly 5', async () => {
    const id = await stock(5);
    const reserve = reserveStock(deps());
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, () =>
        reserve({ orderId: order(), currency: 'usd', items: [{ sku: id, quantity: 1 }] }),
      ),
    );
    expect(outcomes.filter((outcome) => outcome.outcome === 'RESERVED')).toHaveLength(5);
    expect(
      outcomes.filter((outcome) => outcome.outcome === 'REJECTED' && outcome.reason === 'OUT_OF_STOCK'),
    ).toHaveLength(15);
    expect(await levels(id)).toEqual({ available: 0, reserved: 5 });
  });

  it('is all or nothing across lines', async () => {
    const [plenty, scarce] = [await stock(10), await stock(1)];
    const orderId = order();
    const outcome = await reserveStock(deps())({
      orderId,
      currency: 'usd',
      items: [
        { sku: plenty, quantity: 3 },
        { sku: scarce, quantity: 2 },
      ],
    });
    expect(outcome).toEqual({ outcome: 'REJECTED', reason: 'OUT_OF_STOCK', skus: [scarce] });
    expect(await levels(plenty)).toEqual({ available: 10, reserved: 0 });
    expect(await levels(scarce)).toEqual({ available: 1, reserved: 0 });
    expect((await eventsOf(orderId)).map((event) => event.type)).toEqual(['inventory.out_of_stock']);
  });

  it('reserves a 50-line order in one transaction', async () => {
    const skus = await Promise.all(Array.from({ length: 50 }, () => stock(2, 100)));
    const outcome = await reserveStock(deps())({
      orderId: order(),
      currency: 'usd',
      items: skus.map((id) => ({ sku: id, quantity: 2 })),
    });
    expect(outcome).toMatchObject({ outcome: 'RESERVED', amount: 50 * 2 * 100 });
    for (const id of skus) expect(await levels(id)).toEqual({ available: 0, reserved: 2 });
  });

  it('answers a repeat with the first decision and writes nothing more', async () => {
    const id = await stock(3);
    const orderId = order();
    const command = { orderId, currency: 'usd', items: [{ sku: id, quantity: 2 }] };
    const [first, second] = await Promise.all([reserveStock(deps())(command), reserveStock(deps())(command)]);
    expect(second).toEqual(first);
    expect(await reserveStock(deps())(command)).toEqual(first);
    expect(await levels(id)).toEqual({ available: 1, reserved: 2 });
    expect((await eventsOf(orderId)).map((event) => event.type)).toEqual(['inventory.reserved']);
  });

  it('tells an unknown product from an out-of-stock one', async () => {
    const missing = sku();
    const outcome = await reserveStock(deps())({
      orderId: order(),
      currency: 'usd',
      items: [{ sku: missing, quantity: 1 }],
    });
    expect(outcome).toEqual({ outcome: 'REJECTED', reason: 'UNKNOWN_PRODUCT', skus: [missing] });
  });
});

describe('confirming and releasing', () => {
  it('a confirmed sale lowers reserved, and confirming again changes nothing', async () => {
    const id = await stock(4);
    const orderId = order();
    await reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity: 3 }] });
    await confirmStock(deps())(orderId);
    await confirmStock(deps())(orderId);
    expect(await levels(id)).toEqual({ available: 1, reserved: 0 });
    expect(await inventory.getReservation(orderId)).toMatchObject({ status: 'CONFIRMED' });
  });

  it('a release returns the stock once, however often it is repeated', async () => {
    const id = await stock(4);
    const orderId = order();
    await reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity: 3 }] });
    const release = releaseStock(deps());
    await Promise.all([release(orderId), release(orderId), release(orderId)]);
    expect(await levels(id)).toEqual({ available: 4, reserved: 0 });
    const released = (await eventsOf(orderId)).filter((event) => event.type === 'inventory.released');
    expect(released).toHaveLength(1);
    expect(released[0]!.data).toMatchObject({ reason: 'COMPENSATION', items: [{ sku: id, quantity: 3 }] });
  });

  it('refuses to release a confirmed sale', async () => {
    const id = await stock(2);
    const orderId = order();
    await reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity: 1 }] });
    await confirmStock(deps())(orderId);
    await expect(releaseStock(deps())(orderId)).rejects.toBeInstanceOf(ReservationConfirmedError);
    expect(await levels(id)).toEqual({ available: 1, reserved: 0 });
  });
});

describe('expiry', () => {
  it('the sweeper releases an expired hold once, and a late confirm fails with ReservationExpiredError', async () => {
    const id = await stock(5);
    const orderId = order();
    const reserved = await reserveStock(deps(1))({
      orderId,
      currency: 'usd',
      items: [{ sku: id, quantity: 2 }],
    });
    expect(reserved.outcome).toBe('RESERVED');
    const holdEnds = Date.parse((reserved as { expiresAt: string }).expiresAt);
    await pollUntil(
      'the hold ends',
      async () => Date.now(),
      (now) => now >= holdEnds + 1000,
      5_000,
    );

    const held = await inventory.getReservation(orderId);
    expect(held!.expiresAt! - held!.holdUntil).toBe(TTL_GRACE_SECONDS); // TTL never beats the sweeper
    await expect(confirmStock(deps())(orderId)).rejects.toBeInstanceOf(ReservationExpiredError);
    const sweep = sweepExpired(deps());
    const results = await Promise.all([sweep(), sweep()]);
    expect(results.reduce((sum, result) => sum + result.expired, 0)).toBeGreaterThanOrEqual(1);
    expect(await inventory.getReservation(orderId)).toMatchObject({ status: 'EXPIRED' });
    expect(await levels(id)).toEqual({ available: 5, reserved: 0 });
    const released = (await eventsOf(orderId)).filter((event) => event.type === 'inventory.released');
    expect(released).toHaveLength(1);
    expect(released[0]!.data).toMatchObject({ reason: 'EXPIRED' });

    // Compensation after expiry is a no-op: no stock is created twice.
    await releaseStock(deps())(orderId);
    expect(await levels(id)).toEqual({ available: 5, reserved: 0 });
  });
});

describe('expiry racing the saga', () => {
  it('a confirm and the sweeper racing for the same hold: exactly one wins, and the stock adds up either way', async () => {
    const outcomes: string[] = [];
    for (let round = 0; round < 10; round++) {
      const id = await stock(5);
      const orderId = order();
      const start = Date.now();
      // The confirm runs a second before the hold ends, the sweeper a second after: both are allowed.
      const confirmer: ReservationDeps = { inventory, now: () => new Date(start + 59_000), ttlSeconds: 60 };
      const sweeper: ReservationDeps = { inventory, now: () => new Date(start + 61_000), ttlSeconds: 60 };
      await reserveStock({ inventory, now: () => new Date(start), ttlSeconds: 60 })({
        orderId,
        currency: 'usd',
        items: [{ sku: id, quantity: 2 }],
      });
      const [confirmed, swept] = await Promise.allSettled([
        confirmStock(confirmer)(orderId),
        sweepExpired(sweeper)(),
      ]);
      const status = (await inventory.getReservation(orderId))!.status;
      outcomes.push(status);
      if (status === 'CONFIRMED') {
        expect(confirmed.status).toBe('fulfilled');
        expect(await levels(id)).toEqual({ available: 3, reserved: 0 });
      } else {
        expect(status).toBe('EXPIRED');
        expect(confirmed).toMatchObject({ status: 'rejected', reason: expect.any(ReservationExpiredError) });
        expect(swept).toMatchObject({ status: 'fulfilled' });
        expect(await levels(id)).toEqual({ available: 5, reserved: 0 });
        const released = (await eventsOf(orderId)).filter((event) => event.type === 'inventory.released');
        expect(released.map((event) => event.data.reason)).toEqual(['EXPIRED']);
      }
    }
    expect(outcomes.every((status) => status === 'CONFIRMED' || status === 'EXPIRED')).toBe(true);
  });
});

describe('PUT /products/{sku} while reservations are active', () => {
  it('sets the free stock and leaves holds alone: a later release adds back on top of the new figure', async () => {
    const id = await stock(10, 1000);
    const orderId = order();
    await reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity: 4 }] });
    expect(await levels(id)).toEqual({ available: 6, reserved: 4 });

    const { product, previous } = await put(id, {
      name: 'renamed',
      unitPrice: 1500,
      currency: 'usd',
      available: 20,
    });
    expect(previous).toMatchObject({ available: 6, reserved: 4, unitPrice: 1000 });
    expect(product).toMatchObject({ name: 'renamed', available: 20, reserved: 4, unitPrice: 1500 });

    // The hold keeps the price it was reserved at; the order is charged that.
    expect(await inventory.getReservation(orderId)).toMatchObject({
      amount: 4000,
      lines: [{ sku: id, quantity: 4, unitPrice: 1000 }],
    });
    await releaseStock(deps())(orderId);
    expect(await levels(id)).toEqual({ available: 24, reserved: 0 });
  });

  it('a confirm after a PUT sells the held units without touching the new free stock', async () => {
    const id = await stock(5);
    const orderId = order();
    await reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity: 5 }] });
    await inventory.putProduct(id, { name: id, unitPrice: 1000, currency: 'usd', available: 0 }, new Date());
    await confirmStock(deps())(orderId);
    expect(await levels(id)).toEqual({ available: 0, reserved: 0 });
  });
});

describe('the stock ledger (stocked, sold)', () => {
  const ledger = async (id: string) => {
    const { available, reserved, sold, stocked, soldIncomplete } = (await inventory.getProduct(id))!;
    return { available, reserved, sold, stocked, soldIncomplete };
  };

  it('counts every unit put in as free, held or sold, across PUTs, sales and releases', async () => {
    const id = await stock(10);
    expect(await ledger(id)).toEqual({
      available: 10,
      reserved: 0,
      sold: 0,
      stocked: 10,
      soldIncomplete: undefined,
    });
    const [sold, held, released] = [order(), order(), order()];
    for (const [orderId, quantity] of [
      [sold, 3],
      [held, 2],
      [released, 1],
    ] as const) {
      await reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity }] });
    }
    await confirmStock(deps())(sold);
    await releaseStock(deps())(released);
    expect(await ledger(id)).toMatchObject({ available: 5, reserved: 2, sold: 3, stocked: 10 });

    // A PUT sets the free stock; what is held or sold stays counted in `stocked`.
    const { product } = await put(id, { name: id, unitPrice: 1000, currency: 'usd', available: 7 });
    expect(product).toMatchObject({ available: 7, reserved: 2, sold: 3, stocked: 12 });
    expect(await ledger(id)).toMatchObject({ available: 7, reserved: 2, sold: 3, stocked: 12 });
  });

  it('keeps the ledger exact when PUTs race reservations on the same SKU', async () => {
    const id = await stock(50);
    const orders = Array.from({ length: 12 }, order);
    await Promise.all([
      ...orders.map((orderId) =>
        reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity: 1 }] }).then(() =>
          confirmStock(deps())(orderId),
        ),
      ),
      ...[40, 30, 45].map((available) =>
        inventory.putProduct(id, { name: id, unitPrice: 1000, currency: 'usd', available }, new Date()),
      ),
    ]);
    const after = await ledger(id);
    expect(after.sold).toBe(12);
    expect(after.available + after.reserved + after.sold!).toBe(after.stocked);
  });

  it('starts on a product written before it existed, and marks its earlier sales as uncounted', async () => {
    const id = sku();
    // As the repository wrote products before the ledger: no sold, no stocked.
    await client.send(
      new PutCommand({
        TableName: table,
        Item: {
          pk: `PRODUCT#${id}`,
          sk: 'PRODUCT',
          kind: 'product',
          sku: id,
          name: id,
          unitPrice: 1000,
          currency: 'usd',
          available: 4,
          reserved: 1,
          lowStockThreshold: 0,
          updatedAt: new Date().toISOString(),
        },
      }),
    );
    const orderId = order();
    await reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity: 2 }] });
    await confirmStock(deps())(orderId);
    expect(await ledger(id)).toMatchObject({ available: 2, reserved: 1, sold: 2, stocked: undefined });

    await inventory.putProduct(id, { name: id, unitPrice: 1000, currency: 'usd', available: 6 }, new Date());
    expect(await ledger(id)).toEqual({
      available: 6,
      reserved: 1,
      sold: 2,
      stocked: 9,
      soldIncomplete: true,
    });
    // The mark stays: those earlier sales are never counted.
    await inventory.putProduct(id, { name: id, unitPrice: 1000, currency: 'usd', available: 5 }, new Date());
    expect(await ledger(id)).toMatchObject({ stocked: 8, soldIncomplete: true });
  });
});

describe('the product version (its ETag)', () => {
  const versionOf = async (id: string) => (await inventory.getProduct(id))!.version;

  it('moves by one with every write of the product, whoever writes it, and not with a refusal', async () => {
    const id = await stock(10);
    expect(await versionOf(id)).toBe(1);
    const [sold, released, expired] = [order(), order(), order()];
    const start = Date.now();
    for (const orderId of [sold, released]) {
      await reserveStock(deps())({ orderId, currency: 'usd', items: [{ sku: id, quantity: 1 }] });
    }
    await reserveStock({ inventory, now: () => new Date(start), ttlSeconds: 60 })({
      orderId: expired,
      currency: 'usd',
      items: [{ sku: id, quantity: 1 }],
    });
    expect(await versionOf(id)).toBe(4);
    await confirmStock(deps())(sold);
    expect(await versionOf(id)).toBe(5);
    await releaseStock(deps())(released);
    expect(await versionOf(id)).toBe(6);
    await sweepExpired({ inventory, now: () => new Date(start + 120_000), ttlSeconds: 60 })();
    expect(await inventory.getReservation(expired)).toMatchObject({ status: 'EXPIRED' });
    expect(await versionOf(id)).toBe(7);
    expect(await inventory.adjustStock(id, { delta: 2 }, new Date())).toMatchObject({
      outcome: 'ADJUSTED',
      product: { available: 11, version: 8 },
    });
    expect(
      (await put(id, { name: id, unitPrice: 1000, currency: 'usd', available: 4 })).product.version,
    ).toBe(9);

    // Refused writes change nothing, the version included.
    await reserveStock(deps())({ orderId: order(), currency: 'usd', items: [{ sku: id, quantity: 5 }] });
    await inventory.adjustStock(id, { delta: -5 }, new Date());
    await inventory.putProduct(id, { name: id, unitPrice: 1, currency: 'usd', available: 1 }, new Date(), {
      version: 8,
    });
    expect(await inventory.getProduct(id)).toMatchObject({ available: 4, unitPrice: 1000, version: 9 });
  });

  it('counts from 0 on a product written before versions (and the ledger) existed', async () => {
    const id = sku();
    await client.send(
      new PutCommand({
        TableName: table,
        Item: {
          pk: `PRODUCT#${id}`,
          sk: 'PRODUCT',
          kind: 'product',
          sku: id,
          name: id,
          unitPrice: 1000,
          currency: 'usd',
          available: 5,
          reserved: 0,
          lowStockThreshold: 0,
          updatedAt: new Date().toISOString(),
        },
      }),
    );
    expect(await inventory.adjustStock(id, { delta: 1, precondition: { version: 1 } }, new Date())).toEqual({
      outcome: 'VERSION_MISMATCH',
      current: expect.objectContaining({ available: 5 }),
    });
    // No ledger to move: it stays unstarted, and the next PUT starts it as for any such product.
    expect(
      await inventory.adjustStock(id, { delta: 3, precondition: { version: 0 } }, new Date()),
    ).toMatchObject({ outcome: 'ADJUSTED', product: { available: 8, version: 1 } });
    expect((await inventory.getProduct(id))!.stocked).toBeUndefined();
    expect(
      await inventory.putProduct(
        id,
        { name: id, unitPrice: 1000, currency: 'usd', available: 6 },
        new Date(),
        {
          version: 1,
        },
      ),
    ).toMatchObject({
      outcome: 'PUT',
      product: { available: 6, version: 2, stocked: 6, soldIncomplete: true },
    });
    expect(await inventory.adjustStock(id, { delta: -2 }, new Date())).toMatchObject({
      outcome: 'ADJUSTED',
      product: { available: 4, stocked: 4, version: 3 },
    });
  });
});

describe('the sweeper', () => {
  it('releases the other holds when one cannot be released, and reports that one', async () => {
    const id = await stock(6);
    const [stuck, fine] = [order(), order()];
    const start = Date.now();
    for (const orderId of [stuck, fine]) {
      await reserveStock({ inventory, now: () => new Date(start), ttlSeconds: 60 })({
        orderId,
        currency: 'usd',
        items: [{ sku: id, quantity: 2 }],
      });
    }
    const failing: InventoryRepository = {
      ...inventory,
      release: (reservation, ...rest) =>
        reservation.orderId === stuck
          ? Promise.reject(new Error('contention'))
          : inventory.release(reservation, ...rest),
    };
    const later = () => new Date(start + 120_000);
    const first = await sweepExpired({ inventory: failing, now: later, ttlSeconds: 60 })();
    expect(first.failures).toEqual([new Error('contention')]);
    expect(await inventory.getReservation(fine)).toMatchObject({ status: 'EXPIRED' });
    expect(await inventory.getReservation(stuck)).toMatchObject({ status: 'ACTIVE' });

    await sweepExpired({ inventory, now: later, ttlSeconds: 60 })();
    expect(await inventory.getReservation(stuck)).toMatchObject({ status: 'EXPIRED' });
    expect(await levels(id)).toEqual({ available: 6, reserved: 0 });
  });
});
