import middy from '@middy/core';
import type { DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { z } from 'zod';
import { parseConfig } from '../../shared/config.ts';
import { logger } from '../../shared/logger.ts';
import { connectEventPublisher, type EventPublisher } from '../../shared/nats.ts';
import { forwardEvents } from './forward-events.ts';

const config = parseConfig(
  z.object({
    NATS_URL: z
      .string()
      .min(1)
      .transform((urls) => urls.split(',').map((url) => url.trim())),
    NATS_PUBLISH_TIMEOUT_MS: z.coerce.number().int().positive().default(5_000),
  }),
);

let publisher: Promise<EventPublisher> | undefined;
function connected(): Promise<EventPublisher> {
  publisher ??= connectEventPublisher({
    servers: config.NATS_URL,
    timeoutMs: config.NATS_PUBLISH_TIMEOUT_MS,
  }).catch((error: unknown) => {
    publisher = undefined; // try again on the next batch
    throw error;
  });
  return publisher;
}

/** DynamoDB Streams (outbox items only, by filter) → NATS JetStream, with partial batch failures. */
export const handler = middy<DynamoDBStreamEvent, DynamoDBBatchResponse>().handler(async (event) =>
  forwardEvents(await connected(), (error, record) =>
    logger.error('could not publish event', { error, eventID: record.eventID }),
  )(event.Records),
);
