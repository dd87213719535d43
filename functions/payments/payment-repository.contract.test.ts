import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { QueryCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, vi } from 'vitest';
import type { CloudEvent } from '../../events/envelope.ts';
import { serviceTable } from '../../tests/support/service-table.ts';
import { InMemoryPayments } from './in-memory-payment-repository.ts';
import { describePaymentRepositoryContract } from './payment-repository.contract.ts';
import { dynamoPaymentRepository } from './payment-repository.ts';

/* One contract, two implementations: the fake domain tests use cannot drift from the real one. */

describePaymentRepositoryContract('in memory', async () => {
  const repo = new InMemoryPayments();
  return {
    repo,
    outbox: async (orderId) => repo.outbox.filter((event) => event.subject === orderId),
    // The fake keeps nothing per instance: every handle on its store is the store itself.
    another: () => repo,
  };
});

let raw: DynamoDBClient;
let client: DynamoDBDocumentClient;
let table: string;

beforeAll(async () => {
  ({ raw, client, table } = await serviceTable('Payments', (name) => ({ PAYMENTS_TABLE_NAME: name })));
});

afterAll(() => {
  vi.unstubAllEnvs();
  raw?.destroy();
});

describePaymentRepositoryContract('DynamoDB', async () => ({
  repo: dynamoPaymentRepository(client, table),
  // The outbox as the table holds it: the payment's partition, its EVENT# items.
  outbox: async (orderId) => {
    const { Items = [] } = await client.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :event)',
        ExpressionAttributeValues: { ':pk': `PAYMENT#${orderId}`, ':event': 'EVENT#' },
        ConsistentRead: true,
      }),
    );
    return Items.map((item) => JSON.parse(String(item.event)) as CloudEvent);
  },
  another: () => dynamoPaymentRepository(client, table),
}));
