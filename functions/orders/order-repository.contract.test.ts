import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, vi } from 'vitest';
import type { CloudEvent } from '../../events/envelope.ts';
import { serviceTable } from '../../tests/support/service-table.ts';
import { InMemoryOrders } from './in-memory-order-repository.ts';
import { describeOrderRepositoryContract } from './order-repository.contract.ts';
import { dynamoOrderRepository } from './order-repository.ts';

/* One contract, two implementations: the fake domain tests use cannot drift from the real one. */

describeOrderRepositoryContract('in memory', async () => {
  const repo = new InMemoryOrders();
  return {
    repo,
    outbox: async (orderId) => repo.outbox.filter((event) => event.subject === orderId),
  };
});

let raw: DynamoDBClient;
let client: DynamoDBDocumentClient;
let table: string;

beforeAll(async () => {
  ({ raw, client, table } = await serviceTable('Orders', (name) => ({ ORDERS_TABLE_NAME: name })));
});

afterAll(() => {
  vi.unstubAllEnvs();
  raw?.destroy();
});

describeOrderRepositoryContract('DynamoDB', async () => ({
  repo: dynamoOrderRepository(client, table),
  // The outbox as the table holds it: the order's partition, its EVENT# items.
  outbox: async (orderId) => {
    const { Items = [] } = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :event)',
        ExpressionAttributeValues: { ':pk': `ORDER#${orderId}`, ':event': 'EVENT#' },
        ConsistentRead: true,
      }),
    );
    return Items.map((item) => JSON.parse(String(item.event)) as CloudEvent);
  },
}));
