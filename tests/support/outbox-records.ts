import { marshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue as LambdaAttributeValue, DynamoDBRecord } from 'aws-lambda';
import type { CloudEvent } from '../../events/envelope.ts';
import { outboxPut } from '../../shared/outbox/write.ts';

let streamPosition = 0;

/** A record as Lambda delivers it from a DynamoDB stream, with `item` as its new image. */
export function streamRecord(item: Record<string, unknown>): DynamoDBRecord {
  streamPosition += 1;
  return {
    eventID: `event-${streamPosition}`,
    eventName: 'INSERT',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    dynamodb: {
      Keys: marshall({ pk: item.pk, sk: item.sk }) as Record<string, LambdaAttributeValue>,
      NewImage: marshall(item, { removeUndefinedValues: true }) as Record<string, LambdaAttributeValue>,
      SequenceNumber: String(100_000 + streamPosition),
      SizeBytes: 100,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
  };
}

/** The stream record of the outbox item the writer puts for `event` (of an order, by default). */
export const outboxRecord = (
  event: CloudEvent,
  overrides: Record<string, unknown> = {},
  partitionKey = `ORDER#${event.subject}`,
): DynamoDBRecord => streamRecord({ ...outboxPut('orders', partitionKey, event).Put!.Item, ...overrides });
