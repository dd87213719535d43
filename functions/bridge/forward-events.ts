import type { DynamoDBBatchResponse, DynamoDBRecord } from 'aws-lambda';
import type { EventPublisher } from '../../shared/nats.ts';
import { eventFromRecord } from '../../shared/outbox.ts';

/**
 * Publishes each record's event in stream order and stops at the first failure: that record and
 * every later one are reported, so Lambda checkpoints before it and retries from there, and one
 * aggregate's events never overtake each other. A publish whose PubAck was lost is sent again on
 * retry and dropped by JetStream's duplicate window (Nats-Msg-Id = event id).
 */
export const forwardEvents =
  (publisher: EventPublisher, onError: (error: unknown, record: DynamoDBRecord) => void) =>
  async (records: DynamoDBRecord[]): Promise<DynamoDBBatchResponse> => {
    for (const [index, record] of records.entries()) {
      try {
        await publisher.publish(eventFromRecord(record));
      } catch (error) {
        onError(error, record);
        return {
          batchItemFailures: records
            .slice(index)
            .map((failed) => ({ itemIdentifier: failed.dynamodb?.SequenceNumber ?? '' })),
        };
      }
    }
    return { batchItemFailures: [] };
  };
