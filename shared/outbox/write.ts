import type { TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { formatSequence, type CloudEvent, type NewEvent } from '../../events/envelope.ts';
import { OUTBOX_KIND, SEQUENCE_ATTRIBUTE } from './layout.ts';

/*
 * Writing the transactional outbox: every event goes into the same transaction as the state change
 * it reports, as an item under the aggregate's partition key, with the next `sequence` of that
 * aggregate. The aggregate item keeps the last sequence its events used (`eventSequence`), moved in
 * the same transaction and guarded by its old value, so two writers can never hand out one sequence
 * twice or leave a gap.
 */

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/** Outbox items stay this long after they were written (the table's TTL removes them): replay's reach. */
export const OUTBOX_RETENTION_SECONDS = 7 * 24 * 3600;

/** The events with the sequences after `last`, in the order given. */
export function sequenceEvents(events: readonly NewEvent[], last: number): CloudEvent[] {
  return events.map(
    (event, index) => ({ ...event, sequence: formatSequence(last + index + 1) }) as CloudEvent,
  );
}

/**
 * The outbox item for one sequenced event. It shares the partition key of the aggregate it reports:
 * DynamoDB Streams keeps order per item, and items of one partition key share a stream shard, so one
 * aggregate's events arrive in commit order (docs/architecture.md has the caveats). The sort key
 * holds the event's time and id, so a redelivered write of the same event (same id and time) meets
 * its own earlier item and is refused.
 */
export function outboxPut(tableName: string, partitionKey: string, event: CloudEvent): TransactItem {
  return {
    Put: {
      TableName: tableName,
      Item: {
        pk: partitionKey,
        sk: `EVENT#${event.time}#${event.id}`,
        kind: OUTBOX_KIND,
        eventId: event.id,
        eventType: event.type,
        sequence: Number(event.sequence),
        event: JSON.stringify(event),
        expiresAt: Math.floor(Date.parse(event.time) / 1000) + OUTBOX_RETENTION_SECONDS,
      },
      ConditionExpression: 'attribute_not_exists(pk)',
    },
  };
}

/** Outbox items for events already sequenced, in order. */
export const outboxPuts = (tableName: string, partitionKey: string, events: readonly CloudEvent[]) =>
  events.map((event) => outboxPut(tableName, partitionKey, event));

/**
 * The clauses an aggregate's UpdateExpression adds to move its sequence from `last` to
 * `last + count`: a SET clause and a condition that the sequence is still `last` (an aggregate
 * without the attribute counts as 0). Name and value placeholders are `#eventSequence`,
 * `:sequenceLast`, `:sequenceNext`; merge `names` and `values` into the expression's own.
 */
export function advanceSequence(last: number, count: number) {
  return {
    set: `#eventSequence = :sequenceNext`,
    condition:
      last === 0
        ? '(attribute_not_exists(#eventSequence) OR #eventSequence = :sequenceLast)'
        : '#eventSequence = :sequenceLast',
    names: { '#eventSequence': SEQUENCE_ATTRIBUTE },
    values: { ':sequenceLast': last, ':sequenceNext': last + count },
  };
}

/** The last sequence an aggregate item (as read, or as a failed condition returned it) has used. */
export function lastSequenceOf(item: Record<string, unknown> | undefined): number {
  const value = item?.[SEQUENCE_ATTRIBUTE];
  return typeof value === 'number' ? value : 0;
}
