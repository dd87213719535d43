import { GetCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { CloudEvent } from '../../events/envelope.ts';
import {
  outboxPut,
  transactWrite,
  TransactionCancelledError,
  type TransactItem,
} from '../../shared/dynamo.ts';
import type { Order } from './order.ts';

/*
 * Orders table layout (pk, sk):
 *   ORDER#<orderId>        ORDER                     the order
 *   ORDER#<orderId>        EVENT#<time>#<eventId>    outbox events of that order
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
  create(order: Order, event: CloudEvent, claim?: IdempotencyClaim): Promise<CreateResult>;
  /** Saves a changed order with its events; false when someone else changed it first. */
  save(order: Order, events: CloudEvent[]): Promise<boolean>;
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
            Item: { ...orderKey(order.orderId), kind: 'order', ...order },
            ConditionExpression: 'attribute_not_exists(pk)',
          },
        },
        outboxPut(tableName, orderKey(order.orderId).pk, event),
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
      try {
        await transactWrite(client, [
          {
            Put: {
              TableName: tableName,
              Item: { ...orderKey(order.orderId), kind: 'order', ...order },
              ConditionExpression: 'version = :expected',
              ExpressionAttributeValues: { ':expected': order.version - 1 },
            },
          },
          ...events.map((event) => outboxPut(tableName, orderKey(order.orderId).pk, event)),
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
