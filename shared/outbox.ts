import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue as LambdaAttributeValue, DynamoDBRecord } from 'aws-lambda';
import { parseEvent, type CloudEvent } from '../events/envelope.ts';
import type { Subject } from '../events/subjects.ts';
import { OUTBOX_KIND } from './dynamo.ts';

/*
 * Reading the transactional outbox back from a table's stream: the filter that selects outbox
 * inserts (used by every event source mapping on the tables) and the decoding of one record.
 */

/**
 * The Lambda filter pattern for new outbox items, optionally of some event types only. Plain JSON
 * in Lambda's filter syntax, so the stack and the local runtime read the same thing.
 */
export function outboxFilterPattern(eventTypes?: Subject[]): Record<string, unknown> {
  return {
    eventName: ['INSERT'],
    dynamodb: {
      NewImage: {
        kind: { S: [OUTBOX_KIND] },
        ...(eventTypes ? { eventType: { S: eventTypes } } : {}),
      },
    },
  };
}

/** Reads the CloudEvent out of an outbox item's stream record; throws on anything else. */
export function eventFromRecord(record: DynamoDBRecord): CloudEvent {
  const image = record.dynamodb?.NewImage as Record<string, LambdaAttributeValue> | undefined;
  if (!image) throw new Error(`stream record ${record.eventID} has no new image`);
  const item = unmarshall(image as Record<string, AttributeValue>);
  if (typeof item.event !== 'string')
    throw new Error(`stream record ${record.eventID} is not an outbox event`);
  return parseEvent(JSON.parse(item.event));
}
