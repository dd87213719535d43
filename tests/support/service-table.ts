import { randomUUID } from 'node:crypto';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { inject, vi } from 'vitest';
import { createTables, tableName, templateTables } from '../../infra/local/tables.ts';
import { synthesizeTemplate } from '../../infra/local/template.ts';

/**
 * One service's table, as the stack defines it, created fresh (under a random prefix) on the tests'
 * DynamoDB Local; and the environment its handlers read at import, as Lambda gives it them.
 * Import the handler modules after this, since they read their configuration at import.
 */
export async function serviceTable(
  service: 'Orders' | 'Inventory' | 'Payments',
  variables: (table: string) => Record<string, string>,
): Promise<{ raw: DynamoDBClient; client: DynamoDBDocumentClient; table: string }> {
  const endpoint = inject('dynamodbEndpoint');
  const raw = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const prefix = `it-${service.toLowerCase()}-${randomUUID().slice(0, 6)}-`;
  const tables = templateTables(await synthesizeTemplate({})).filter((t) => t.logicalId.startsWith(service));
  if (tables.length !== 1) throw new Error(`expected one ${service} table, found ${tables.length}`);
  await createTables(raw, tables, prefix);
  const table = tableName(tables[0]!.logicalId, prefix);
  for (const [name, value] of Object.entries({
    AWS_ENDPOINT_URL_DYNAMODB: endpoint,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    ...variables(table),
  }))
    vi.stubEnv(name, value);
  return { raw, client: DynamoDBDocumentClient.from(raw), table };
}
