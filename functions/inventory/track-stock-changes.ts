import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { eventHandler } from '../../shared/lambda-edge.ts';
import { logger } from '../../shared/logger.ts';
import { inventoryDeps } from './deps.ts';
import { reactToStockChanges } from './stock-changes.ts';

const react = reactToStockChanges({
  ...inventoryDeps(),
  onError: (error, record) =>
    logger.error('could not handle stock change', { error, eventID: record.eventID }),
});

/** Inventory table stream (products and reservations, by filter): projections, TTL deletes, low stock. */
export const handler = eventHandler<DynamoDBStreamEvent, DynamoDBBatchResponse>(react);
