import type { TestProject } from 'vitest/node';
import { startDynamoDbLocal, startNatsServer } from '../../infra/local/processes.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    dynamodbEndpoint: string;
    natsUrl: string;
  }
}

/** One DynamoDB Local and one private nats-server for the whole run: hermetic, whatever runs on 4222. */
export default async function setup(project: TestProject) {
  const [dynamodb, nats] = await Promise.all([startDynamoDbLocal(), startNatsServer()]);
  project.provide('dynamodbEndpoint', dynamodb.url);
  project.provide('natsUrl', nats.url);
  return async () => {
    await Promise.all([dynamodb.stop(), nats.stop()]);
  };
}
