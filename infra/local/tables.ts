import {
  CreateTableCommand,
  DescribeTableCommand,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
  waitUntilTableExists,
  type CreateTableCommandInput,
  type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import type { Json, Template } from './template.ts';

/** Table logical id → local table name: the id itself, which is stable and unique within the stack. */
export const tableName = (logicalId: string, prefix = '') => `${prefix}${logicalId}`;

/** The stack's tables, from its template. */
export function templateTables(template: Template) {
  return Object.entries(template.Resources)
    .filter(([, resource]) => resource.Type === 'AWS::DynamoDB::Table')
    .map(([logicalId, resource]) => ({ logicalId, properties: resource.Properties ?? {} }));
}

/**
 * Creates the stack's tables in DynamoDB Local (idempotently), with their indexes, streams and TTL.
 * Returns each table's stream ARN by logical id.
 */
export async function createTables(
  client: DynamoDBClient,
  tables: Array<{ logicalId: string; properties: Record<string, Json> }>,
  prefix = '',
) {
  const streamArns = new Map<string, string>();
  for (const { logicalId, properties } of tables) {
    // CloudFormation's table properties, translated to the CreateTable call (the shapes differ slightly).
    const stream = properties.StreamSpecification as { StreamViewType?: string } | undefined;
    const input = {
      TableName: tableName(logicalId, prefix),
      KeySchema: properties.KeySchema,
      AttributeDefinitions: properties.AttributeDefinitions,
      BillingMode: properties.BillingMode ?? 'PAY_PER_REQUEST',
      ...(properties.GlobalSecondaryIndexes
        ? { GlobalSecondaryIndexes: properties.GlobalSecondaryIndexes }
        : {}),
      ...(properties.LocalSecondaryIndexes
        ? { LocalSecondaryIndexes: properties.LocalSecondaryIndexes }
        : {}),
      ...(stream?.StreamViewType
        ? { StreamSpecification: { StreamEnabled: true, StreamViewType: stream.StreamViewType } }
        : {}),
    } as unknown as CreateTableCommandInput;
    try {
      await client.send(new CreateTableCommand(input));
    } catch (error) {
      if (!(error instanceof ResourceInUseException)) throw error;
    }
    await waitUntilTableExists({ client, maxWaitTime: 60 }, { TableName: tableName(logicalId, prefix) });
    const ttl = properties.TimeToLiveSpecification as
      { AttributeName?: string; Enabled?: boolean } | undefined;
    if (ttl?.Enabled && ttl.AttributeName) {
      await client
        .send(
          new UpdateTimeToLiveCommand({
            TableName: tableName(logicalId, prefix),
            TimeToLiveSpecification: { AttributeName: ttl.AttributeName, Enabled: true },
          }),
        )
        .catch((error: Error) => {
          if (!/already enabled/i.test(error.message)) throw error;
        });
    }
    const { Table } = await client.send(
      new DescribeTableCommand({ TableName: tableName(logicalId, prefix) }),
    );
    if (Table?.LatestStreamArn) streamArns.set(logicalId, Table.LatestStreamArn);
  }
  return streamArns;
}
