import type {
  AttributeValue as LambdaAttributeValue,
  DynamoDBBatchResponse,
  DynamoDBRecord,
} from 'aws-lambda';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { parseEvent, type CloudEvent } from '../../events/envelope.ts';
import type { EventPublisher } from '../../shared/nats.ts';

/** Reads the CloudEvent out of an outbox item's stream record; throws on anything else. */
export function eventFromRecord(record: DynamoDBRecord): CloudEvent {
  const image = record.dynamodb?.NewImage as Record<string, LambdaAttributeValue> | undefined;
  if (!image) throw new Error(`stream record ${record.eventID} has no new image`);
  const item = unmarshall(image as Record<string, AttributeValue>);
  if (typeof item.event !== 'string')
    throw new Error(`stream record ${record.eventID} is not an outbox event`);
  return parseEvent(JSON.parse(item.event));
}

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
