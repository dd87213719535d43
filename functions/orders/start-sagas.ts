import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { z } from 'zod';
import { dynamoDocumentClient, stepFunctionsClient } from '../../shared/aws.ts';
import { eventHandler } from '../../shared/lambda-edge.ts';
import { logger } from '../../shared/logger.ts';
import { ordersConfig } from './config.ts';
import { ensureSagasStarted } from './ensure-sagas-started.ts';
import { dynamoOrderRepository } from './order-repository.ts';
import { stepFunctionsSagaStarter } from './saga-starter.ts';

const config = ordersConfig({ STATE_MACHINE_ARN: z.string().startsWith('arn:') });
const ensure = ensureSagasStarted({
  orders: dynamoOrderRepository(dynamoDocumentClient(), config.ORDERS_TABLE_NAME),
  saga: stepFunctionsSagaStarter(stepFunctionsClient(), config.STATE_MACHINE_ARN),
  onError: (error, record) => logger.error('could not start saga', { error, eventID: record.eventID }),
});

/** Orders table stream (order.created outbox items, by filter) → the order's saga, started once. */
export const handler = eventHandler<DynamoDBStreamEvent, DynamoDBBatchResponse>(ensure);
