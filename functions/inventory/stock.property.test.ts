import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import fc from 'fast-check';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createTables, tableName, templateTables } from '../../infra/local/tables.ts';
import { synthesizeTemplate } from '../../infra/local/template.ts';
import { adjustStock } from './adjustments.ts';
import { dynamoInventoryRepository, type InventoryRepository } from './inventory-repository.ts';
import {
  confirmStock,
  releaseStock,
  reserveStock,
  sweepExpired,
  type ReservationDeps,
} from './reservations.ts';
import {
  ReservationClosedError,
  ReservationConfirmedError,
  ReservationExpiredError,
  ReservationNotFoundError,
} from './stock.ts';

/*
 * The stock invariant under random interleavings, on DynamoDB Local. Each run gets fresh SKUs and
 * orders and a clock of its own; commands run in groups whose members race each other. After every
 * group, for every SKU:
 *   available + reserved + sold = stocked = stock put in      (nothing created, nothing lost)
 *   reserved = the units of its ACTIVE reservations, sold = those of its CONFIRMED ones
 *   available >= 0, reserved >= 0 and sold >= 0
 * where `sold` and `stocked` are the product's own ledger (what `npm run reconcile` checks) and
 * "stock put in" is the test's model: each PUT adds the difference between the `available` it set
 * and the one it replaced, read in the same atomic write, since a PUT sets free stock and leaves
 * holds and sales alone; each adjustment that applies adds its delta, and a refused one (below
 * zero, a stale If-Match, a reused or repeated Idempotency-Key) adds nothing. Besides, each product's
 * version (its ETag) never goes back and moves whenever its figures do, and an Idempotency-Key
 * applies at most once.
 */

let inventory: InventoryRepository;

beforeAll(async () => {
  const raw = new DynamoDBClient({
    endpoint: inject('dynamodbEndpoint'),
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const prefix = `prop-${randomUUID().slice(0, 6)}-`;
  const tables = templateTables(await synthesizeTemplate({})).filter((t) =>
    t.logicalId.startsWith('Inventory'),
  );
  await createTables(raw, tables, prefix);
  inventory = dynamoInventoryRepository(
    DynamoDBDocumentClient.from(raw),
    tableName(tables[0]!.logicalId, prefix),
  );
});

const SKUS = 3;
const ORDERS = 5;
const TTL_SECONDS = 60;

type Command =
  | { kind: 'reserve'; order: number; lines: Array<{ sku: number; quantity: number }> }
  | { kind: 'confirm'; order: number }
  | { kind: 'release'; order: number }
  | { kind: 'expire'; advanceSeconds: number }
  | { kind: 'restock'; sku: number; available: number; ifMatch: boolean }
  | { kind: 'adjust'; sku: number; delta: number; key: number | undefined; ifMatch: boolean };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('reserve' as const),
      order: fc.nat(ORDERS - 1),
      lines: fc.uniqueArray(fc.record({ sku: fc.nat(SKUS - 1), quantity: fc.integer({ min: 1, max: 4 }) }), {
        minLength: 1,
        maxLength: SKUS,
        selector: (line) => line.sku,
      }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('confirm' as const), order: fc.nat(ORDERS - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), order: fc.nat(ORDERS - 1) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('expire' as const),
      advanceSeconds: fc.integer({ min: 0, max: 90 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('restock' as const),
      sku: fc.nat(SKUS - 1),
      available: fc.nat(12),
      ifMatch: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('adjust' as const),
      sku: fc.nat(SKUS - 1),
      delta: fc.integer({ min: -6, max: 6 }).filter((delta) => delta !== 0),
      // A few keys per SKU, so that retries (and reuses with another delta) race the first attempt.
      key: fc.option(fc.nat(2), { nil: undefined }),
      ifMatch: fc.boolean(),
    }),
  },
);

/** Refusals the rules promise; anything else is a failure of the property. */
const EXPECTED_REFUSALS = [
  ReservationExpiredError,
  ReservationConfirmedError,
  ReservationNotFoundError,
  ReservationClosedError,
];

describe('the stock invariant', () => {
  it('holds under random interleavings of reserve, confirm, release, expire, restock and adjust', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(10), { minLength: SKUS, maxLength: SKUS }),
        fc.array(fc.array(command, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 8 }),
        async (initial, groups) => {
          const run = randomUUID().slice(0, 8);
          const skus = initial.map((_, index) => `prop-${run}-${index}`);
          const orders = Array.from({ length: ORDERS }, (_, index) => `prop-${run}-order-${index}`);
          let clock = Date.now();
          const deps: ReservationDeps = { inventory, now: () => new Date(clock), ttlSeconds: TTL_SECONDS };
          const putIn = new Map<string, number>();
          const addPutIn = (sku: string, units: number) => putIn.set(sku, (putIn.get(sku) ?? 0) + units);
          /** Each Idempotency-Key that adjusted, with its delta: a key adjusts once. */
          const keysUsed = new Map<string, number>();
          /** Answers that a key was taken, checked once their group has settled. */
          const keyAnswers: Array<{ key: string; delta: number; outcome: 'REPEATED' | 'KEY_REUSED' }> = [];
          /** What each product looked like at the last check. */
          const seen = new Map<string, { version: number; figures: string }>();
          /** The version read just before, as a client's If-Match would carry it. */
          const currentVersion = async (sku: string) => ({
            version: (await inventory.getProduct(sku))!.version ?? 0,
          });

          const restock = async (sku: string, available: number, ifMatch = false) => {
            const result = await inventory.putProduct(
              sku,
              { name: sku, unitPrice: 100, currency: 'usd', available },
              deps.now(),
              ifMatch ? await currentVersion(sku) : undefined,
            );
            if (result.outcome === 'PUT') {
              addPutIn(sku, available - (result.previous?.available ?? 0));
              return;
            }
            // Refused: only a PUT with If-Match, and only when a write moved the version first.
            expect(ifMatch && result.outcome === 'VERSION_MISMATCH', result.outcome).toBe(true);
          };
          for (const [index, sku] of skus.entries()) await restock(sku, initial[index]!);

          const adjust = async (sku: string, delta: number, key: number | undefined, ifMatch: boolean) => {
            const idempotencyKey = key === undefined ? undefined : `${sku}-key-${key}`;
            const precondition = ifMatch ? await currentVersion(sku) : undefined;
            const result = await adjustStock(deps)(
              sku,
              { delta },
              {
                ...(precondition ? { precondition } : {}),
                ...(idempotencyKey ? { idempotencyKey } : {}),
              },
            );
            switch (result.outcome) {
              case 'ADJUSTED':
                addPutIn(sku, delta);
                if (idempotencyKey) {
                  expect(keysUsed.has(idempotencyKey), `${idempotencyKey} adjusted twice`).toBe(false);
                  keysUsed.set(idempotencyKey, delta);
                } else if (precondition) {
                  expect(result.product.version).toBe(precondition.version + 1);
                }
                return;
              case 'REPEATED':
              case 'KEY_REUSED':
                // The key's adjustment was made, perhaps by a racing call that has not answered yet.
                expect(idempotencyKey).toBeDefined();
                keyAnswers.push({ key: idempotencyKey!, delta, outcome: result.outcome });
                return;
              case 'VERSION_MISMATCH':
                expect(precondition).toBeDefined();
                return;
              case 'INSUFFICIENT_STOCK':
                expect(delta).toBeLessThan(0);
                expect(result.available).toBeLessThan(-delta);
                return;
              case 'NOT_FOUND':
                throw new Error(`${sku} exists, yet an adjustment found it NOT_FOUND`);
            }
          };

          const execute = async (step: Command): Promise<void> => {
            switch (step.kind) {
              case 'reserve':
                await reserveStock(deps)({
                  orderId: orders[step.order]!,
                  currency: 'usd',
                  items: step.lines.map((line) => ({ sku: skus[line.sku]!, quantity: line.quantity })),
                });
                return;
              case 'confirm':
                await confirmStock(deps)(orders[step.order]!);
                return;
              case 'release':
                await releaseStock(deps)(orders[step.order]!);
                return;
              case 'expire':
                clock += step.advanceSeconds * 1000;
                await sweepExpired(deps)();
                return;
              case 'restock':
                await restock(skus[step.sku]!, step.available, step.ifMatch);
                return;
              case 'adjust':
                await adjust(skus[step.sku]!, step.delta, step.key, step.ifMatch);
            }
          };

          for (const group of groups) {
            const results = await Promise.allSettled(group.map(execute));
            for (const result of results) {
              if (
                result.status === 'rejected' &&
                !EXPECTED_REFUSALS.some((type) => result.reason instanceof type)
              )
                throw result.reason;
            }

            for (const { key, delta, outcome } of keyAnswers.splice(0)) {
              expect(keysUsed.has(key), key).toBe(true);
              expect(keysUsed.get(key) === delta ? 'REPEATED' : 'KEY_REUSED', key).toBe(outcome);
            }

            const reservations = (
              await Promise.all(orders.map((orderId) => inventory.getReservation(orderId)))
            ).filter((reservation) => reservation !== undefined);
            for (const sku of skus) {
              const units = (status: string) =>
                reservations
                  .filter((reservation) => reservation.status === status)
                  .flatMap((reservation) => reservation.lines)
                  .filter((line) => line.sku === sku)
                  .reduce((sum, line) => sum + line.quantity, 0);
              const product = (await inventory.getProduct(sku))!;
              expect(product.available, sku).toBeGreaterThanOrEqual(0);
              expect(product.reserved, sku).toBeGreaterThanOrEqual(0);
              expect(product.reserved, sku).toBe(units('ACTIVE'));
              expect(product.sold, sku).toBe(units('CONFIRMED'));
              expect(product.available + product.reserved + units('CONFIRMED'), sku).toBe(putIn.get(sku));
              expect(product.stocked, sku).toBe(putIn.get(sku));
              expect(product.available + product.reserved + product.sold!, sku).toBe(product.stocked);
              expect(product.soldIncomplete, sku).toBeUndefined();

              const figures = JSON.stringify([
                product.available,
                product.reserved,
                product.sold,
                product.stocked,
              ]);
              const last = seen.get(sku);
              if (last) {
                expect(product.version, sku).toBeGreaterThanOrEqual(last.version);
                if (figures !== last.figures) expect(product.version, sku).toBeGreaterThan(last.version);
              }
              seen.set(sku, { version: product.version!, figures });
            }
          }
        },
      ),
      { numRuns: 25 },
    );
  }, 120_000);
});
