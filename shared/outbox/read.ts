import type { AttributeValue, DynamoDBRecord } from 'aws-lambda';
import { SUBJECTS, type Subject } from '../../events/subjects.ts';
import { OUTBOX_KIND } from './layout.ts';

/*
 * Reading the transactional outbox back: the filter that selects outbox inserts (used by every event
 * source mapping on the tables, and by the local runtime's poller), and the stored event of one
 * record or item. Nothing here imports the DynamoDB client.
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

/** An outbox event as it was committed: its envelope read, its body the exact JSON stored. */
export interface StoredEvent {
  /** The aggregate's partition key (the order's, the reservation's, the payment's or the SKU's). */
  aggregate: string;
  id: string;
  /** The CloudEvents `type`: the NATS subject it is published on. */
  type: Subject;
  /** The CloudEvents `subject`: the order id, or the sku. */
  subject: string;
  source: string;
  /** `sequence` as stored (absent on events written before sequences existed). */
  sequence: string | undefined;
  time: string;
  /** The stored JSON, byte for byte: what is published. */
  body: string;
}

export class MalformedOutboxItemError extends Error {
  constructor(where: string, problem: string) {
    super(`${where}: ${problem}`);
    this.name = 'MalformedOutboxItemError';
  }
}

const SUBJECT_SET: ReadonlySet<string> = new Set(SUBJECTS);

/**
 * Reads the envelope of a stored event, and only the envelope: what routes and deduplicates it
 * (`type`, `id`) and what identifies it to consumers. The `data` is not checked against today's
 * schemas, so an event committed under an older schema is still forwarded as it was written;
 * producers validate `data` when they write it.
 */
export function storedEvent(aggregate: string, body: string, where: string): StoredEvent {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new MalformedOutboxItemError(where, 'its event is not JSON');
  }
  const envelope = (json ?? {}) as Record<string, unknown>;
  const text = (name: string): string => {
    const value = envelope[name];
    if (typeof value !== 'string' || value.length === 0)
      throw new MalformedOutboxItemError(where, `its event has no ${name}`);
    return value;
  };
  if (envelope.specversion !== '1.0')
    throw new MalformedOutboxItemError(where, 'its event is not CloudEvents 1.0');
  const type = text('type');
  if (!SUBJECT_SET.has(type))
    throw new MalformedOutboxItemError(where, `its event type ${type} is no subject of ours`);
  return {
    aggregate,
    id: text('id'),
    type: type as Subject,
    subject: text('subject'),
    source: text('source'),
    sequence: typeof envelope.sequence === 'string' ? envelope.sequence : undefined,
    time: text('time'),
    body,
  };
}

/** The stored event of an outbox item's stream record; throws on anything else. */
export function storedEventOfRecord(record: DynamoDBRecord): StoredEvent {
  const image = record.dynamodb?.NewImage as Record<string, AttributeValue> | undefined;
  const where = `stream record ${record.eventID}`;
  if (!image) throw new MalformedOutboxItemError(where, 'it has no new image');
  const body = image.event?.S;
  const aggregate = image.pk?.S;
  if (image.kind?.S !== OUTBOX_KIND || body === undefined || aggregate === undefined)
    throw new MalformedOutboxItemError(where, 'it is not an outbox event');
  return storedEvent(aggregate, body, where);
}
