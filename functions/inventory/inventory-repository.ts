import { createHash } from 'node:crypto';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { NewEvent } from '../../events/envelope.ts';
import { transactWrite, TransactionCancelledError, type TransactItem } from '../../shared/dynamo.ts';
import { advanceSequence, lastSequenceOf, outboxPut, sequenceEvents } from '../../shared/outbox/write.ts';
import { ConcurrentChangeError } from '../../shared/saga.ts';
import {
  linesOf,
  meetsPrecondition,
  versionOf,
  type Product,
  type PutProductRequest,
  type Reservation,
  type ReservationLine,
  type ReservationStatus,
  type ReservedLine,
  type VersionPrecondition,
} from './stock.ts';

/*
 * Inventory table layout (pk, sk); docs/architecture.md has the same with the reasons:
 *   PRODUCT#<sku>            PRODUCT                   stock of one SKU: available, reserved, and the
 *                                                      ledger sold, stocked (available + reserved + sold)
 *   PRODUCT#<sku>            EVENT#<time>#<eventId>    outbox events about the SKU (low stock); the product
 *                                                      item's `eventSequence` is the last sequence they used
 *   PRODUCT#<sku>            ADJUSTMENT#<key>          a stock adjustment's Idempotency-Key (24 h), written
 *                                                      in the adjustment's own transaction
 *   RESERVATION#<orderId>    RESERVATION               one order's hold on every line: the record of truth
 *   RESERVATION#<orderId>    LINE#<sku>                one line of it, for the by-SKU index (a projection)
 *   RESERVATION#<orderId>    EVENT#<time>#<eventId>    outbox events of that reservation (and its
 *                                                      `eventSequence`, as for products)
 *
 * GSI `active-by-expiry` (activeShard, activeUntil) is sparse: only ACTIVE reservations carry the
 * attributes, spread over SWEEP_SHARDS partitions, so the sweeper reads exactly what may need
 * releasing. GSI `reservations-by-sku` (lineSku, lineSort) holds the line items only. GSI
 * `products-by-sku` (catalogue, sku) is sparse too: only product items carry `catalogue` (set by
 * every PUT), so `GET /products` reads the catalogue in SKU order without scanning reservations. It
 * projects nothing that moves with stock, so reserving, selling and releasing never write it: its
 * one partition takes only new products. A page reads the keys there, then the products themselves.
 *
 * `holdUntil` is when the hold ends; `expiresAt`, the table's TTL attribute, trails it by a day while
 * ACTIVE (the sweeper, not TTL, returns stock) and is removed when the reservation closes, so closed
 * reservations stay on record. The line items are written from the table's stream, not in the
 * reservation's transaction: 50 lines already take 52 of a transaction's 100 items.
 */
export const ACTIVE_BY_EXPIRY_INDEX = 'active-by-expiry';
export const RESERVATIONS_BY_SKU_INDEX = 'reservations-by-sku';
export const PRODUCTS_BY_SKU_INDEX = 'products-by-sku';
/** The `catalogue` of every product item: the one partition of PRODUCTS_BY_SKU_INDEX. */
const CATALOGUE = 'PRODUCTS';
/** Partitions of the sweeper's index: one partition takes ~1,000 writes/s, so 8 take ~8,000 holds/s. */
export const SWEEP_SHARDS = 8;
const productKey = (sku: string) => ({ pk: `PRODUCT#${sku}`, sk: 'PRODUCT' });
const reservationKey = (orderId: string) => ({ pk: `RESERVATION#${orderId}`, sk: 'RESERVATION' });
const lineKey = (orderId: string, sku: string) => ({ pk: `RESERVATION#${orderId}`, sk: `LINE#${sku}` });
const adjustmentKey = (sku: string, key: string) => ({ pk: `PRODUCT#${sku}`, sk: `ADJUSTMENT#${key}` });
const ADJUSTMENT_KEY_TTL_SECONDS = 24 * 3600;

/*
 * Every write of a product item moves its version by one, in that same write: a product from before
 * versions has none, and counts from 0. The clause goes into each UpdateExpression's SET.
 */
const BUMP_VERSION = 'version = if_not_exists(version, :zero) + :one';
const VERSION_VALUES = { ':zero': 0, ':one': 1 };

/** The condition that the product is at the precondition's version (with its values), if it names one. */
function versionCondition(precondition?: VersionPrecondition): {
  condition?: string;
  values: Record<string, unknown>;
} {
  if (precondition === undefined || typeof precondition === 'string') return { values: {} };
  return {
    condition:
      precondition.version === 0
        ? '(attribute_not_exists(version) OR version = :expected)'
        : 'version = :expected',
    values: { ':expected': precondition.version },
  };
}

const sweepShardKey = (shard: number) => `ACTIVE#${shard}`;

/** The sweeper-index partition of an order's reservation: a stable hash, so it never moves. */
function sweepShardOf(orderId: string): string {
  return sweepShardKey(createHash('sha256').update(orderId).digest().readUInt32BE(0) % SWEEP_SHARDS);
}

/** An opaque position in a paged query, as DynamoDB returns it. */
export type PageKey = Record<string, unknown>;

export type ReserveWriteResult =
  { written: true } | { written: false; short: string[]; changed: string[]; duplicate: boolean };

/** A PUT's result: the product as written (and as it was), or why its precondition refused it. */
export type PutProductResult =
  | { outcome: 'PUT'; product: Product; previous?: Product }
  /** The product is not at the precondition's version; nothing was written. */
  | { outcome: 'VERSION_MISMATCH'; current: Product }
  /** A precondition was given and the product does not exist; nothing was written. */
  | { outcome: 'NOT_FOUND' };

export interface StockAdjustment {
  /** Units added (positive) or removed (negative), to `available` and `stocked` alike. */
  delta: number;
  reason?: string;
  precondition?: VersionPrecondition;
  /** The client's Idempotency-Key and the hash of its request: recorded with the adjustment, 24 h. */
  idempotency?: { key: string; requestHash: string };
}

/** An adjustment's result; every refusal changed nothing. */
export type AdjustStockResult =
  | { outcome: 'ADJUSTED'; product: Product }
  /** The Idempotency-Key's adjustment was already made with this request: the product as it is now. */
  | { outcome: 'REPEATED'; product: Product }
  /** The Idempotency-Key was already used with another request. */
  | { outcome: 'KEY_REUSED' }
  /** Removing the units would take `available` below zero. */
  | { outcome: 'INSUFFICIENT_STOCK'; available: number }
  | { outcome: 'VERSION_MISMATCH'; current: Product }
  | { outcome: 'NOT_FOUND' };

export interface InventoryRepository {
  getProduct(sku: string): Promise<Product | undefined>;
  getProducts(skus: string[]): Promise<Map<string, Product>>;
  /**
   * Up to `limit` products in SKU order, after the SKU `after`; `next` is the SKU the next page
   * starts after, when there is one.
   */
  listProducts(limit: number, after?: string): Promise<{ products: Product[]; next?: string }>;
  /**
   * Creates or replaces a product; `previous` is the product as it was just before, read atomically.
   * Held and sold units stay as they are, and `stocked` becomes available + reserved + sold. With a
   * precondition the product must exist (and be at its version) in the very write that replaces it.
   * Throws ConcurrentChangeError when reservations kept moving the product's stock under it.
   */
  putProduct(
    sku: string,
    request: PutProductRequest,
    now: Date,
    precondition?: VersionPrecondition,
  ): Promise<PutProductResult>;
  /**
   * Adds `delta` units to `available` and `stocked` in one conditional write (with its
   * Idempotency-Key record, when it has one, in one transaction), never below zero.
   */
  adjustStock(sku: string, adjustment: StockAdjustment, now: Date): Promise<AdjustStockResult>;
  getReservation(orderId: string): Promise<Reservation | undefined>;
  /** Several reservations by order, read consistently; absent orders are missing from the map. */
  getReservations(orderIds: string[]): Promise<Map<string, Reservation>>;
  /** Holds every line and records the reservation, all or nothing. */
  reserve(reservation: Reservation, event: NewEvent): Promise<ReserveWriteResult>;
  /** Records a rejected attempt so that a retry answers the same without a second event. */
  reject(reservation: Reservation, event: NewEvent): Promise<boolean>;
  /** ACTIVE → CONFIRMED while unexpired; false when the reservation was no longer ACTIVE and unexpired. */
  confirm(reservation: Reservation, now: Date): Promise<boolean>;
  /** ACTIVE → RELEASED or EXPIRED, returning the stock; false when it was no longer ACTIVE. */
  release(reservation: Reservation, to: 'RELEASED' | 'EXPIRED', event: NewEvent, now: Date): Promise<boolean>;
  /**
   * An ACTIVE reservation that DynamoDB's TTL deleted before the sweeper released it: puts it back as
   * EXPIRED and returns its stock, once. False when it was already put back.
   */
  restoreExpired(reservation: Reservation, event: NewEvent, now: Date): Promise<boolean>;
  /** ACTIVE reservations of one sweeper shard whose hold ended at or before `now`, oldest first. */
  listExpired(
    shard: number,
    now: Date,
    limit: number,
    cursor?: PageKey,
  ): Promise<{ orderIds: string[]; cursor?: PageKey }>;
  /** Projects the reservation's lines for the by-SKU index; a closed line is never reopened. */
  putLines(reservation: Reservation): Promise<void>;
  /** One SKU's reservation lines, newest first. */
  listLinesBySku(
    sku: string,
    limit: number,
    cursor?: PageKey,
  ): Promise<{ lines: ReservationLine[]; cursor?: PageKey }>;
  /** Records a low-stock event in the SKU's outbox; false when that very event is recorded already. */
  recordLowStock(event: NewEvent): Promise<boolean>;
}

function strip<T>(item: Record<string, unknown>): T {
  const {
    pk: _pk,
    sk: _sk,
    kind: _kind,
    catalogue: _catalogue,
    activeShard: _shard,
    activeUntil: _until,
    lineSku: _lineSku,
    lineSort: _lineSort,
    ...rest
  } = item;
  return rest as T;
}

/** How a reservation's closing moves each line's units (`:q`) on its product. */
interface StockMove {
  update: string;
  values?: Record<string, unknown>;
}

/** A PUT reads the held units and writes on the condition that they stayed; a few reads settle a race. */
const MAX_PUT_ATTEMPTS = 8;
/** An adjustment retries only when a PUT started the product's ledger between two of its attempts. */
const MAX_ADJUST_ATTEMPTS = 3;

/**
 * Why an adjustment's condition failed, judged on the product as that condition saw it. RFC 9110
 * §13.2.1: a request that fails without its precondition (an unknown SKU) fails that way, and the
 * precondition is judged before the content (the units). Undefined: none of these, so only the
 * form of the product's ledger had changed.
 */
function refusalOf(before: Product | undefined, adjustment: StockAdjustment): AdjustStockResult | undefined {
  if (!before) return { outcome: 'NOT_FOUND' };
  if (!meetsPrecondition(before, adjustment.precondition))
    return { outcome: 'VERSION_MISMATCH', current: before };
  if (before.available < -adjustment.delta)
    return { outcome: 'INSUFFICIENT_STOCK', available: before.available };
  return undefined;
}

/** An adjustment's Idempotency-Key record, as stored. */
interface AdjustmentRecord {
  requestHash: string;
  expiresAt: number;
}

const epochSeconds = (date: Date) => Math.floor(date.getTime() / 1000);

function isConditionFailure(error: unknown): error is TransactionCancelledError {
  return (
    error instanceof TransactionCancelledError &&
    error.reasons.some((reason) => reason.code === 'ConditionalCheckFailed')
  );
}

export function dynamoInventoryRepository(
  client: DynamoDBDocumentClient,
  tableName: string,
): InventoryRepository {
  const productLines = (lines: ReservedLine[], stock: StockMove, condition: string): TransactItem[] =>
    lines.map((line) => ({
      Update: {
        TableName: tableName,
        Key: productKey(line.sku),
        UpdateExpression: stock.update,
        ConditionExpression: condition,
        ExpressionAttributeValues: { ':q': line.quantity, ...stock.values },
      },
    }));

  const returnStock: StockMove = {
    update: `SET available = available + :q, reserved = reserved - :q, ${BUMP_VERSION}`,
    values: VERSION_VALUES,
  };
  // A product from before the ledger has no `sold` yet: its first sale starts it.
  const sellStock: StockMove = {
    update: `SET reserved = reserved - :q, sold = if_not_exists(sold, :zero) + :q, ${BUMP_VERSION}`,
    values: VERSION_VALUES,
  };

  /**
   * ACTIVE → `to`, moving each line's units as `stock` says, in one transaction. False when the
   * reservation was no longer ACTIVE (or its hold condition failed): someone else closed it first.
   */
  async function closeReservation(
    reservation: Reservation,
    now: Date,
    change: { to: ReservationStatus; holdCondition?: string; stock: StockMove; event?: NewEvent },
  ): Promise<boolean> {
    // The ACTIVE guard already makes this the one close; the sequence guard keeps the count exact.
    const last = lastSequenceOf(reservation as unknown as Record<string, unknown>);
    const sequence = change.event ? advanceSequence(last, 1) : undefined;
    return firstItemHolds([
      {
        Update: {
          TableName: tableName,
          Key: reservationKey(reservation.orderId),
          UpdateExpression:
            `SET #status = :to, updatedAt = :now${sequence ? `, ${sequence.set}` : ''} ` +
            'REMOVE activeShard, activeUntil, expiresAt',
          ConditionExpression: ['#status = :active', change.holdCondition, sequence?.condition]
            .filter(Boolean)
            .join(' AND '),
          ExpressionAttributeNames: { '#status': 'status', ...sequence?.names },
          ExpressionAttributeValues: {
            ':to': change.to,
            ':active': 'ACTIVE',
            ':now': now.toISOString(),
            ...(change.holdCondition ? { ':nowSeconds': epochSeconds(now) } : {}),
            ...sequence?.values,
          },
        },
      },
      ...productLines(reservation.lines, change.stock, 'reserved >= :q'),
      ...(change.event
        ? [
            outboxPut(
              tableName,
              reservationKey(reservation.orderId).pk,
              sequenceEvents([change.event], last)[0]!,
            ),
          ]
        : []),
    ]);
  }

  /** Consistent BatchGetItem of up to 100 keys, following UnprocessedKeys until every key is read. */
  async function batchGet<T>(keys: Record<string, unknown>[]): Promise<T[]> {
    const found: T[] = [];
    let pending = keys;
    while (pending.length > 0) {
      const { Responses, UnprocessedKeys } = await client.send(
        new BatchGetCommand({ RequestItems: { [tableName]: { Keys: pending, ConsistentRead: true } } }),
      );
      for (const item of Responses?.[tableName] ?? []) found.push(strip<T>(item));
      pending = (UnprocessedKeys?.[tableName]?.Keys as Record<string, unknown>[] | undefined) ?? [];
    }
    return found;
  }

  /**
   * Runs a transaction whose first item is the guard (the reservation's expected state). False when
   * that guard failed: another writer got there first. Any other cancellation is a fault.
   */
  async function firstItemHolds(items: TransactItem[]): Promise<boolean> {
    try {
      await transactWrite(client, items);
      return true;
    } catch (error) {
      if (isConditionFailure(error) && error.reasons[0]?.code === 'ConditionalCheckFailed') return false;
      throw error;
    }
  }

  async function readProduct(sku: string): Promise<Product | undefined> {
    const { Item } = await client.send(
      new GetCommand({ TableName: tableName, Key: productKey(sku), ConsistentRead: true }),
    );
    return Item ? strip<Product>(Item) : undefined;
  }

  /** The Idempotency-Key's record while it lasts: TTL deletes it some time after `expiresAt`. */
  async function liveAdjustment(sku: string, key: string, now: Date): Promise<AdjustmentRecord | undefined> {
    const { Item } = await client.send(
      new GetCommand({ TableName: tableName, Key: adjustmentKey(sku, key), ConsistentRead: true }),
    );
    const record = Item as AdjustmentRecord | undefined;
    return record && record.expiresAt > epochSeconds(now) ? record : undefined;
  }

  return {
    getProduct: readProduct,

    async getProducts(skus) {
      const products = await batchGet<Product>(skus.map(productKey));
      return new Map(products.map((product) => [product.sku, product]));
    },

    async listProducts(limit, after) {
      // One more key than the page, so that the last page is known to be the last.
      const { Items } = await client.send(
        new QueryCommand({
          TableName: tableName,
          IndexName: PRODUCTS_BY_SKU_INDEX,
          KeyConditionExpression: `catalogue = :catalogue${after === undefined ? '' : ' AND sku > :after'}`,
          ExpressionAttributeValues: {
            ':catalogue': CATALOGUE,
            ...(after === undefined ? {} : { ':after': after }),
          },
          Limit: limit + 1,
        }),
      );
      const skus = (Items ?? []).slice(0, limit).map((item) => String(item.sku));
      const products = skus.length > 0 ? await batchGet<Product>(skus.map(productKey)) : [];
      const bySku = new Map(products.map((product) => [product.sku, product]));
      return {
        products: skus.flatMap((sku) => bySku.get(sku) ?? []),
        ...((Items ?? []).length > limit ? { next: skus.at(-1) } : {}),
      };
    },

    async getReservations(orderIds) {
      const reservations = await batchGet<Reservation>(orderIds.map(reservationKey));
      return new Map(reservations.map((reservation) => [reservation.orderId, reservation]));
    },

    async putProduct(sku, request, now, precondition) {
      // `stocked` must come out as available + reserved + sold, and one update expression adds only
      // two operands: read the held units, then write on the condition that they have not moved.
      // A precondition's version is part of that same condition, and every reservation moves the
      // version: a retry re-reads and refuses, it never writes past the version the client saw.
      const version = versionCondition(precondition);
      for (let attempt = 1; attempt <= MAX_PUT_ATTEMPTS; attempt++) {
        const { Item } = await client.send(
          new GetCommand({ TableName: tableName, Key: productKey(sku), ConsistentRead: true }),
        );
        const current = Item ? strip<Product>(Item) : undefined;
        if (precondition !== undefined) {
          if (!current) return { outcome: 'NOT_FOUND' };
          if (!meetsPrecondition(current, precondition)) return { outcome: 'VERSION_MISMATCH', current };
        }
        const reserved = current?.reserved ?? 0;
        const sold = current?.sold ?? 0;
        // A product from before the ledger: its earlier sales were never counted in `sold`.
        const soldIncomplete =
          current !== undefined && (current.stocked === undefined || current.soldIncomplete);
        const fields = {
          sku,
          name: request.name,
          unitPrice: request.unitPrice,
          currency: request.currency,
          available: request.available,
          lowStockThreshold: request.lowStockThreshold ?? 0,
          updatedAt: now.toISOString(),
        };
        const ledger = { reserved, sold, stocked: request.available + reserved + sold };
        try {
          const { Attributes } = await client.send(
            new UpdateCommand({
              TableName: tableName,
              Key: productKey(sku),
              UpdateExpression:
                'SET sku = :sku, #name = :name, unitPrice = :unitPrice, currency = :currency, available = :available, ' +
                'lowStockThreshold = :lowStockThreshold, updatedAt = :updatedAt, reserved = :reserved, ' +
                `sold = :sold, stocked = :stocked, kind = :kind, catalogue = :catalogue, ${BUMP_VERSION}` +
                (soldIncomplete ? ', soldIncomplete = :true' : ''),
              ConditionExpression: [
                !current
                  ? 'attribute_not_exists(pk)'
                  : current.sold === undefined
                    ? 'reserved = :reserved AND attribute_not_exists(sold)'
                    : 'reserved = :reserved AND sold = :sold',
                version.condition,
              ]
                .filter(Boolean)
                .join(' AND '),
              ExpressionAttributeNames: { '#name': 'name' },
              ExpressionAttributeValues: {
                ...Object.fromEntries(
                  Object.entries({ ...fields, ...ledger }).map(([name, value]) => [`:${name}`, value]),
                ),
                ':kind': 'product',
                ':catalogue': CATALOGUE,
                ...VERSION_VALUES,
                ...version.values,
                ...(soldIncomplete ? { ':true': true } : {}),
              },
              // The old image, so that the caller knows exactly what this PUT replaced.
              ReturnValues: 'ALL_OLD',
            }),
          );
          const previous = Attributes ? strip<Product>(Attributes) : undefined;
          return {
            outcome: 'PUT',
            product: {
              ...previous,
              ...fields,
              ...ledger,
              version: (previous ? versionOf(previous) : 0) + 1,
              ...(soldIncomplete ? { soldIncomplete } : {}),
            },
            ...(previous ? { previous } : {}),
          };
        } catch (error) {
          // A reservation moved the held units or the version (or the product appeared) since the
          // read: read again, and let the precondition judge the new state.
          if (!(error instanceof ConditionalCheckFailedException)) throw error;
        }
      }
      throw new ConcurrentChangeError(`Could not put product ${sku}: its stock kept changing`);
    },

    async adjustStock(sku, adjustment, now) {
      const { delta, precondition, idempotency } = adjustment;
      // A tag that names no version: nothing to write, only which refusal to answer.
      if (precondition === 'unmatchable') return refusalOf(await readProduct(sku), adjustment)!;
      const version = versionCondition(precondition);
      // `stocked` moves with `available`. A product from before the ledger has none to move: it
      // stays without one, and the next PUT starts it (as it does for such a product).
      let withLedger = true;
      for (let attempt = 1; attempt <= MAX_ADJUST_ATTEMPTS; attempt++) {
        const update = {
          TableName: tableName,
          Key: productKey(sku),
          UpdateExpression:
            `SET available = available + :delta, updatedAt = :now, ${BUMP_VERSION}` +
            (withLedger ? ', stocked = stocked + :delta' : ''),
          ConditionExpression: [
            withLedger
              ? 'attribute_exists(stocked)'
              : 'attribute_exists(pk) AND attribute_not_exists(stocked)',
            delta < 0 ? 'available >= :removed' : undefined,
            version.condition,
          ]
            .filter(Boolean)
            .join(' AND '),
          ExpressionAttributeValues: {
            ':delta': delta,
            ':now': now.toISOString(),
            ...VERSION_VALUES,
            ...version.values,
            ...(delta < 0 ? { ':removed': -delta } : {}),
          },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const,
        };
        let before: Product | undefined;
        if (!idempotency) {
          try {
            const { Attributes } = await client.send(
              new UpdateCommand({ ...update, ReturnValues: 'ALL_NEW' }),
            );
            return { outcome: 'ADJUSTED', product: strip<Product>(Attributes!) };
          } catch (error) {
            if (!(error instanceof ConditionalCheckFailedException)) throw error;
            before = error.Item ? strip<Product>(unmarshall(error.Item)) : undefined;
          }
        } else {
          try {
            await transactWrite(client, [
              { Update: update },
              {
                Put: {
                  TableName: tableName,
                  Item: {
                    ...adjustmentKey(sku, idempotency.key),
                    kind: 'adjustment',
                    sku,
                    idempotencyKey: idempotency.key,
                    delta,
                    ...(adjustment.reason === undefined ? {} : { reason: adjustment.reason }),
                    requestHash: idempotency.requestHash,
                    createdAt: now.toISOString(),
                    expiresAt: epochSeconds(now) + ADJUSTMENT_KEY_TTL_SECONDS,
                  } satisfies AdjustmentRecord & Record<string, unknown>,
                  // A record past its time that TTL has not deleted yet no longer holds the key.
                  ConditionExpression: 'attribute_not_exists(pk) OR expiresAt <= :nowSeconds',
                  ExpressionAttributeValues: { ':nowSeconds': epochSeconds(now) },
                },
              },
            ]);
            // A transaction returns no values: the product as it is now, this adjustment included.
            return { outcome: 'ADJUSTED', product: (await readProduct(sku))! };
          } catch (error) {
            if (!(error instanceof TransactionCancelledError)) throw error;
            // The key first: a repeat whose stock or version has moved since is still a repeat.
            const record = await liveAdjustment(sku, idempotency.key, now);
            if (record) {
              if (record.requestHash !== idempotency.requestHash) return { outcome: 'KEY_REUSED' };
              return { outcome: 'REPEATED', product: (await readProduct(sku))! };
            }
            const reason = error.reasons[0];
            if (reason?.code !== 'ConditionalCheckFailed') throw error;
            before = reason.item ? strip<Product>(reason.item) : undefined;
          }
        }
        const refusal = refusalOf(before, adjustment);
        if (refusal) return refusal;
        withLedger = before!.stocked !== undefined;
      }
      throw new ConcurrentChangeError(`Could not adjust the stock of ${sku}: its ledger kept changing`);
    },

    async getReservation(orderId) {
      const { Item } = await client.send(
        new GetCommand({ TableName: tableName, Key: reservationKey(orderId), ConsistentRead: true }),
      );
      return Item ? strip<Reservation>(Item) : undefined;
    },

    async reserve(reservation, event) {
      const lines = reservation.lines;
      const items: TransactItem[] = [
        ...lines.map((line) => ({
          Update: {
            TableName: tableName,
            Key: productKey(line.sku),
            UpdateExpression: `SET available = available - :q, reserved = reserved + :q, ${BUMP_VERSION}`,
            ConditionExpression: 'available >= :q AND unitPrice = :price AND currency = :currency',
            ExpressionAttributeValues: {
              ':q': line.quantity,
              ':price': line.unitPrice,
              ':currency': reservation.currency,
              ...VERSION_VALUES,
            },
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD' as const,
          },
        })),
        {
          Put: {
            TableName: tableName,
            Item: {
              ...reservationKey(reservation.orderId),
              kind: 'reservation',
              ...reservation,
              activeShard: sweepShardOf(reservation.orderId),
              activeUntil: reservation.holdUntil,
              eventSequence: 1,
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        outboxPut(tableName, reservationKey(reservation.orderId).pk, sequenceEvents([event], 0)[0]!),
      ];
      try {
        await transactWrite(client, items);
        return { written: true };
      } catch (error) {
        if (!isConditionFailure(error)) throw error;
        const short: string[] = [];
        const changed: string[] = [];
        lines.forEach((line, index) => {
          const reason = error.reasons[index];
          if (reason?.code !== 'ConditionalCheckFailed') return;
          const current = reason.item as Partial<Product> | undefined;
          if (current && (current.available ?? 0) < line.quantity) short.push(line.sku);
          else changed.push(line.sku);
        });
        const duplicate = error.reasons[lines.length]?.code === 'ConditionalCheckFailed';
        return { written: false, short, changed, duplicate };
      }
    },

    async reject(reservation, event) {
      try {
        await transactWrite(client, [
          {
            Put: {
              TableName: tableName,
              Item: {
                ...reservationKey(reservation.orderId),
                kind: 'reservation',
                ...reservation,
                eventSequence: 1,
              },
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          },
          outboxPut(tableName, reservationKey(reservation.orderId).pk, sequenceEvents([event], 0)[0]!),
        ]);
        return true;
      } catch (error) {
        if (isConditionFailure(error)) return false;
        throw error;
      }
    },

    async confirm(reservation, now) {
      return closeReservation(reservation, now, {
        to: 'CONFIRMED',
        holdCondition: 'holdUntil > :nowSeconds',
        stock: sellStock,
      });
    },

    async release(reservation, to, event, now) {
      return closeReservation(reservation, now, {
        to,
        ...(to === 'EXPIRED' ? { holdCondition: 'holdUntil <= :nowSeconds' } : {}),
        stock: returnStock,
        event,
      });
    },

    async restoreExpired(reservation, event, now) {
      // The reservation may come straight from a stream image: drop the keys and index attributes.
      const { expiresAt: _ttl, ...kept } = strip<Reservation>(
        reservation as unknown as Record<string, unknown>,
      );
      // The deleted item's sequence carries on: its events are still in the outbox (or were sent).
      const last = lastSequenceOf(reservation as unknown as Record<string, unknown>);
      return firstItemHolds([
        {
          Put: {
            TableName: tableName,
            Item: {
              ...reservationKey(reservation.orderId),
              kind: 'reservation',
              ...kept,
              status: 'EXPIRED',
              updatedAt: now.toISOString(),
              eventSequence: last + 1,
            },
            // The record's absence is the proof that its stock has not come back yet.
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        ...productLines(reservation.lines, returnStock, 'reserved >= :q'),
        outboxPut(tableName, reservationKey(reservation.orderId).pk, sequenceEvents([event], last)[0]!),
      ]);
    },

    async listExpired(shard, now, limit, cursor) {
      const { Items, LastEvaluatedKey } = await client.send(
        new QueryCommand({
          TableName: tableName,
          IndexName: ACTIVE_BY_EXPIRY_INDEX,
          KeyConditionExpression: 'activeShard = :shard AND activeUntil <= :now',
          ExpressionAttributeValues: { ':shard': sweepShardKey(shard), ':now': epochSeconds(now) },
          Limit: limit,
          ExclusiveStartKey: cursor,
        }),
      );
      return {
        orderIds: (Items ?? []).map((item) => String(item.orderId)),
        ...(LastEvaluatedKey ? { cursor: LastEvaluatedKey } : {}),
      };
    },

    async putLines(reservation) {
      await Promise.all(
        linesOf(reservation).map((line) =>
          client
            .send(
              new PutCommand({
                TableName: tableName,
                Item: {
                  ...lineKey(line.orderId, line.sku),
                  kind: 'reservation-line',
                  ...line,
                  lineSku: line.sku,
                  lineSort: `${line.createdAt}#${line.orderId}`,
                },
                // A reservation closes once; a late or repeated ACTIVE image never reopens its lines.
                ConditionExpression: 'attribute_not_exists(pk) OR #status = :active',
                ExpressionAttributeNames: { '#status': 'status' },
                ExpressionAttributeValues: { ':active': 'ACTIVE' },
              }),
            )
            .catch((error: unknown) => {
              if (!(error instanceof ConditionalCheckFailedException)) throw error;
            }),
        ),
      );
    },

    async listLinesBySku(sku, limit, cursor) {
      const { Items, LastEvaluatedKey } = await client.send(
        new QueryCommand({
          TableName: tableName,
          IndexName: RESERVATIONS_BY_SKU_INDEX,
          KeyConditionExpression: 'lineSku = :sku',
          ExpressionAttributeValues: { ':sku': sku },
          ScanIndexForward: false,
          Limit: limit,
          ExclusiveStartKey: cursor,
        }),
      );
      return {
        lines: (Items ?? []).map((item) => strip<ReservationLine>(item)),
        ...(LastEvaluatedKey ? { cursor: LastEvaluatedKey } : {}),
      };
    },

    async recordLowStock(event) {
      // The event's id and time come from the stream record that showed the crossing: a redelivery
      // writes the same outbox item, which already exists. The product's sequence is read, then
      // guarded; a product that moved meanwhile is read again. Its version (the ETag) stays: the
      // product as a client sees it did not change.
      const key = productKey(event.subject);
      for (let attempt = 1; ; attempt++) {
        const { Item } = await client.send(
          new GetCommand({
            TableName: tableName,
            Key: key,
            ConsistentRead: true,
            ProjectionExpression: '#eventSequence',
            ExpressionAttributeNames: { '#eventSequence': 'eventSequence' },
          }),
        );
        const last = lastSequenceOf(Item);
        const sequence = advanceSequence(last, 1);
        try {
          await transactWrite(client, [
            outboxPut(tableName, key.pk, sequenceEvents([event], last)[0]!),
            {
              Update: {
                TableName: tableName,
                Key: key,
                UpdateExpression: `SET ${sequence.set}`,
                ConditionExpression: `attribute_exists(pk) AND ${sequence.condition}`,
                ExpressionAttributeNames: sequence.names,
                ExpressionAttributeValues: sequence.values,
              },
            },
          ]);
          return true;
        } catch (error) {
          if (!isConditionFailure(error)) throw error;
          if (error.reasons[0]?.code === 'ConditionalCheckFailed') return false;
          if (attempt >= 5) throw error;
        }
      }
    },
  };
}
