import {
  BatchGetCommand,
  GetCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import type { CloudEvent } from '../../events/envelope.ts';
import {
  outboxPut,
  transactWrite,
  TransactionCancelledError,
  type TransactItem,
} from '../../shared/dynamo.ts';
import type { Product, PutProductRequest, Reservation, ReservationStatus, ReservedLine } from './stock.ts';

/*
 * Inventory table layout (pk, sk):
 *   PRODUCT#<sku>            PRODUCT                   stock of one SKU: available, reserved
 *   PRODUCT#<sku>            EVENT#<time>#<eventId>    outbox events about the SKU (low stock)
 *   RESERVATION#<orderId>    RESERVATION               one order's hold on every line
 *   RESERVATION#<orderId>    EVENT#<time>#<eventId>    outbox events of that reservation
 * GSI `active-by-expiry` (activeShard, activeUntil) is sparse: only ACTIVE reservations carry the
 * attributes, so the sweeper reads exactly what may need releasing. `holdUntil` is when the hold
 * ends; `expiresAt`, the table's TTL attribute, trails it by a day while ACTIVE (the sweeper, not
 * TTL, returns stock) and is removed when the reservation is confirmed or released, so closed
 * reservations stay on record.
 */
export const ACTIVE_BY_EXPIRY_INDEX = 'active-by-expiry';
const ACTIVE_SHARD = 'ACTIVE';
const productKey = (sku: string) => ({ pk: `PRODUCT#${sku}`, sk: 'PRODUCT' });
const reservationKey = (orderId: string) => ({ pk: `RESERVATION#${orderId}`, sk: 'RESERVATION' });

export type ReserveWriteResult =
  { written: true } | { written: false; short: string[]; changed: string[]; duplicate: boolean };

export interface InventoryRepository {
  getProduct(sku: string): Promise<Product | undefined>;
  getProducts(skus: string[]): Promise<Map<string, Product>>;
  putProduct(sku: string, request: PutProductRequest, now: Date): Promise<Product>;
  getReservation(orderId: string): Promise<Reservation | undefined>;
  /** Holds every line and records the reservation, all or nothing. */
  reserve(reservation: Reservation, event: CloudEvent): Promise<ReserveWriteResult>;
  /** Records a rejected attempt so that a retry answers the same without a second event. */
  reject(reservation: Reservation, event: CloudEvent): Promise<boolean>;
  /** ACTIVE → CONFIRMED while unexpired; false when the reservation was no longer ACTIVE and unexpired. */
  confirm(reservation: Reservation, now: Date): Promise<boolean>;
  /** ACTIVE → RELEASED or EXPIRED, returning the stock; false when it was no longer ACTIVE. */
  release(
    reservation: Reservation,
    to: 'RELEASED' | 'EXPIRED',
    event: CloudEvent,
    now: Date,
  ): Promise<boolean>;
  /** ACTIVE reservations whose hold ended at or before `now`, oldest first. */
  listExpired(
    now: Date,
    limit: number,
    cursor?: Record<string, unknown>,
  ): Promise<{ orderIds: string[]; cursor?: Record<string, unknown> }>;
}

function strip<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, kind: _kind, activeShard: _shard, activeUntil: _until, ...rest } = item;
  return rest as T;
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
  const productLines = (lines: ReservedLine[], update: string, condition: string): TransactItem[] =>
    lines.map((line) => ({
      Update: {
        TableName: tableName,
        Key: productKey(line.sku),
        UpdateExpression: update,
        ConditionExpression: condition,
        ExpressionAttributeValues: { ':q': line.quantity },
      },
    }));

  /**
   * ACTIVE → `to`, moving each line's units as `stock` says, in one transaction. False when the
   * reservation was no longer ACTIVE (or its hold condition failed): someone else closed it first.
   */
  async function closeReservation(
    reservation: Reservation,
    now: Date,
    change: { to: ReservationStatus; holdCondition?: string; stock: string; event?: CloudEvent },
  ): Promise<boolean> {
    try {
      await transactWrite(client, [
        {
          Update: {
            TableName: tableName,
            Key: reservationKey(reservation.orderId),
            UpdateExpression:
              'SET #status = :to, updatedAt = :now REMOVE activeShard, activeUntil, expiresAt',
            ConditionExpression: ['#status = :active', change.holdCondition].filter(Boolean).join(' AND '),
            ExpressionAttributeNames: { '#status': 'status' },
            ExpressionAttributeValues: {
              ':to': change.to,
              ':active': 'ACTIVE',
              ':now': now.toISOString(),
              ...(change.holdCondition ? { ':nowSeconds': epochSeconds(now) } : {}),
            },
          },
        },
        ...productLines(reservation.lines, change.stock, 'reserved >= :q'),
        ...(change.event ? [outboxPut(tableName, reservationKey(reservation.orderId).pk, change.event)] : []),
      ]);
      return true;
    } catch (error) {
      if (isConditionFailure(error) && error.reasons[0]?.code === 'ConditionalCheckFailed') return false;
      throw error;
    }
  }

  return {
    async getProduct(sku) {
      const { Item } = await client.send(
        new GetCommand({ TableName: tableName, Key: productKey(sku), ConsistentRead: true }),
      );
      return Item ? strip<Product>(Item) : undefined;
    },

    async getProducts(skus) {
      const products = new Map<string, Product>();
      let keys: Record<string, unknown>[] = skus.map(productKey);
      while (keys.length > 0) {
        const { Responses, UnprocessedKeys } = await client.send(
          new BatchGetCommand({ RequestItems: { [tableName]: { Keys: keys, ConsistentRead: true } } }),
        );
        for (const item of Responses?.[tableName] ?? []) {
          const product = strip<Product>(item);
          products.set(product.sku, product);
        }
        keys = (UnprocessedKeys?.[tableName]?.Keys as Record<string, unknown>[] | undefined) ?? [];
      }
      return products;
    },

    async putProduct(sku, request, now) {
      const { Attributes } = await client.send(
        new UpdateCommand({
          TableName: tableName,
          Key: productKey(sku),
          UpdateExpression:
            'SET sku = :sku, #name = :name, unitPrice = :price, currency = :currency, available = :available, ' +
            'lowStockThreshold = :threshold, updatedAt = :now, reserved = if_not_exists(reserved, :zero), kind = :kind',
          ExpressionAttributeNames: { '#name': 'name' },
          ExpressionAttributeValues: {
            ':sku': sku,
            ':name': request.name,
            ':price': request.unitPrice,
            ':currency': request.currency,
            ':available': request.available,
            ':threshold': request.lowStockThreshold ?? 0,
            ':now': now.toISOString(),
            ':zero': 0,
            ':kind': 'product',
          },
          ReturnValues: 'ALL_NEW',
        }),
      );
      return strip<Product>(Attributes!);
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
            UpdateExpression: 'SET available = available - :q, reserved = reserved + :q',
            ConditionExpression: 'available >= :q AND unitPrice = :price AND currency = :currency',
            ExpressionAttributeValues: {
              ':q': line.quantity,
              ':price': line.unitPrice,
              ':currency': reservation.currency,
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
              activeShard: ACTIVE_SHARD,
              activeUntil: reservation.holdUntil,
            },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        outboxPut(tableName, reservationKey(reservation.orderId).pk, event),
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
              Item: { ...reservationKey(reservation.orderId), kind: 'reservation', ...reservation },
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          },
          outboxPut(tableName, reservationKey(reservation.orderId).pk, event),
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
        stock: 'SET reserved = reserved - :q',
      });
    },

    async release(reservation, to, event, now) {
      return closeReservation(reservation, now, {
        to,
        ...(to === 'EXPIRED' ? { holdCondition: 'holdUntil <= :nowSeconds' } : {}),
        stock: 'SET available = available + :q, reserved = reserved - :q',
        event,
      });
    },

    async listExpired(now, limit, cursor) {
      const { Items, LastEvaluatedKey } = await client.send(
        new QueryCommand({
          TableName: tableName,
          IndexName: ACTIVE_BY_EXPIRY_INDEX,
          KeyConditionExpression: 'activeShard = :shard AND activeUntil <= :now',
          ExpressionAttributeValues: { ':shard': ACTIVE_SHARD, ':now': epochSeconds(now) },
          Limit: limit,
          ExclusiveStartKey: cursor,
        }),
      );
      return {
        orderIds: (Items ?? []).map((item) => String(item.orderId)),
        ...(LastEvaluatedKey ? { cursor: LastEvaluatedKey } : {}),
      };
    },
  };
}
