import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { NewEvent } from '../../events/envelope.ts';
import { transactWrite, TransactionCancelledError, type TransactItem } from '../../shared/dynamo.ts';
import { outboxPuts, sequenceEvents } from '../../shared/outbox/write.ts';
import type { Order } from './order.ts';

/*
 * Orders table layout (pk, sk):
 *   ORDER#<orderId>        ORDER                     the order
 *   ORDER#<orderId>        EVENT#<time>#<eventId>    outbox events of that order; the order item's
 *                                                     `eventSequence` is the last sequence they used
 *   IDEMPOTENCY#<customer>#<key>  IDEMPOTENCY        a customer's Idempotency-Key of POST /orders (24 h);
 *                                                     the customer id URI-encoded, so `#` in it cannot
 *                                                     make two customers' keys meet
 */
const orderKey = (orderId: string) => ({ pk: `ORDER#${orderId}`, sk: 'ORDER' });
const idempotencyKey = (claim: IdempotencyClaim) => ({
  pk: `IDEMPOTENCY#${encodeURIComponent(claim.customerId)}#${claim.key}`,
  sk: 'IDEMPOTENCY',
});
const IDEMPOTENCY_TTL_SECONDS = 24 * 3600;

export interface IdempotencyClaim {
  key: string;
  /** The key is the customer's own: two customers' equal keys are two keys. */
  customerId: string;
  requestHash: string;
}

export type CreateResult = { created: true } | { created: false; orderId: string; sameRequest: boolean };

export interface OrderRepository {
  get(orderId: string): Promise<Order | undefined>;
  /** Writes the order, its `order.created` event and the idempotency claim in one transaction. */
  create(order: Order, event: NewEvent, claim?: IdempotencyClaim): Promise<CreateResult>;
  /**
   * Saves a changed order with its events, which take the sequences after the order's
   * `eventSequence`; false when someone else changed the order first.
   */
  save(order: Order, events: NewEvent[]): Promise<boolean>;
}

function toOrder(item: Record<string, unknown>): Order {
  const { pk: _pk, sk: _sk, kind: _kind, ...order } = item;
  return order as unknown as Order;
}

export function dynamoOrderRepository(client: DynamoDBDocumentClient, tableName: string): OrderRepository {
  return {
    async get(orderId) {
      const { Item } = await client.send(
        new GetCommand({ TableName: tableName, Key: orderKey(orderId), ConsistentRead: true }),
      );
      return Item ? toOrder(Item) : undefined;
    },

    async create(order, event, claim) {
      const items: TransactItem[] = [
        {
          Put: {
            TableName: tableName,
            Item: { ...orderKey(order.orderId), kind: 'order', ...order, eventSequence: 1 },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        ...outboxPuts(tableName, orderKey(order.orderId).pk, sequenceEvents([event], 0)),
      ];
      if (claim) {
        items.push({
          Put: {
            TableName: tableName,
            Item: {
              ...idempotencyKey(claim),
              kind: 'idempotency',
              orderId: order.orderId,
              requestHash: claim.requestHash,
              expiresAt: Math.floor(Date.parse(order.createdAt) / 1000) + IDEMPOTENCY_TTL_SECONDS,
            },
            ConditionExpression: 'attribute_not_exists(pk)',
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          },
        });
      }
      try {
        await transactWrite(client, items);
        return { created: true };
      } catch (error) {
        const previous =
          claim && error instanceof TransactionCancelledError ? error.reasons[2]?.item : undefined;
        if (!claim || !previous) throw error;
        return {
          created: false,
          orderId: String(previous.orderId),
          sameRequest: previous.requestHash === claim.requestHash,
        };
      }
    },

    async save(order, events) {
      // The version guard makes the order's sequence the one it was read with.
      const last = order.eventSequence ?? 0;
      try {
        await transactWrite(client, [
          {
            Put: {
              TableName: tableName,
              Item: {
                ...orderKey(order.orderId),
                kind: 'order',
                ...order,
                eventSequence: last + events.length,
              },
              ConditionExpression: 'version = :expected',
              ExpressionAttributeValues: { ':expected': order.version - 1 },
            },
          },
          ...outboxPuts(tableName, orderKey(order.orderId).pk, sequenceEvents(events, last)),
        ]);
        return true;
      } catch (error) {
        if (
          error instanceof TransactionCancelledError &&
          error.reasons[0]?.code === 'ConditionalCheckFailed'
        ) {
          return false;
        }
        throw error;
      }
    },
  };
}
