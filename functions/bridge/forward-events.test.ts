import { marshall } from '@aws-sdk/util-dynamodb';
import type { AttributeValue as LambdaAttributeValue, DynamoDBRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { createEvent, type CloudEvent } from '../../events/envelope.ts';
import type { EventPublisher } from '../../shared/nats.ts';
import { eventFromRecord } from '../../shared/outbox.ts';
import { forwardEvents } from './forward-events.ts';

function orderEvent(orderId: string, status: 'PENDING' | 'STOCK_RESERVED' = 'PENDING'): CloudEvent {
  return createEvent('order.status_changed', {
    source: 'order-saga/orders',
    subject: orderId,
    data: { orderId, status, sagaState: 'STARTED', previousStatus: 'PENDING', previousSagaState: 'STARTED' },
  });
}

let sequence = 0;

/** A record as Lambda delivers it from a DynamoDB stream, with `item` as its new image. */
function streamRecord(item: Record<string, unknown>): DynamoDBRecord {
  sequence += 1;
  const sequenceNumber = String(100_000 + sequence);
  return {
    eventID: `event-${sequence}`,
    eventName: 'INSERT',
    eventSource: 'aws:dynamodb',
    awsRegion: 'us-east-1',
    dynamodb: {
      Keys: marshall({ pk: item.pk, sk: item.sk }) as Record<string, LambdaAttributeValue>,
      NewImage: marshall(item, { removeUndefinedValues: true }) as Record<string, LambdaAttributeValue>,
      SequenceNumber: sequenceNumber,
      SizeBytes: 100,
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    },
  };
}

/** The outbox item shared/dynamo.ts writes, as it appears in the stream. */
function outboxRecord(event: CloudEvent, overrides: Record<string, unknown> = {}): DynamoDBRecord {
  return streamRecord({
    pk: `ORDER#${event.subject}`,
    sk: `EVENT#${event.time}#${event.id}`,
    kind: 'event',
    eventId: event.id,
    eventType: event.type,
    event: JSON.stringify(event),
    expiresAt: Math.floor(Date.parse(event.time) / 1000) + 7 * 24 * 3600,
    ...overrides,
  });
}

/** Records every publish; fails the ones whose event id is in `failing`. */
function fakePublisher(failing: ReadonlySet<string> = new Set()) {
  const published: CloudEvent[] = [];
  const attempted: string[] = [];
  const publisher: EventPublisher = {
    async publish(event) {
      attempted.push(event.id);
      if (failing.has(event.id)) throw new Error('no PubAck within 5000 ms');
      published.push(event);
      return { stream: 'ORDERS', seq: published.length, duplicate: false };
    },
    async close() {},
  };
  return { publisher, published, attempted };
}

function recordingErrors() {
  const errors: Array<{ error: unknown; eventID: string | undefined }> = [];
  return {
    errors,
    onError: (error: unknown, record: DynamoDBRecord) => errors.push({ error, eventID: record.eventID }),
  };
}

const sequenceOf = (record: DynamoDBRecord) => record.dynamodb!.SequenceNumber!;

describe('forwardEvents', () => {
  it('publishes every outbox event in stream order and reports no failures', async () => {
    const events = [orderEvent('o-1'), orderEvent('o-1', 'STOCK_RESERVED'), orderEvent('o-2')];
    const { publisher, published } = fakePublisher();
    const { errors, onError } = recordingErrors();
    const response = await forwardEvents(publisher, onError)(events.map((event) => outboxRecord(event)));
    expect(response).toEqual({ batchItemFailures: [] });
    expect(published).toEqual(events);
    expect(errors).toEqual([]);
  });

  it('an empty batch succeeds without publishing', async () => {
    const { publisher, published } = fakePublisher();
    expect(await forwardEvents(publisher, () => {})([])).toEqual({ batchItemFailures: [] });
    expect(published).toEqual([]);
  });

  it('stops at the first failed publish and reports it and every later record', async () => {
    const events = [
      orderEvent('o-1'),
      orderEvent('o-1', 'STOCK_RESERVED'),
      orderEvent('o-2'),
      orderEvent('o-3'),
    ];
    const records = events.map((event) => outboxRecord(event));
    const { publisher, published, attempted } = fakePublisher(new Set([events[1]!.id]));
    const { errors, onError } = recordingErrors();

    const response = await forwardEvents(publisher, onError)(records);

    expect(response.batchItemFailures).toEqual(
      records.slice(1).map((r) => ({ itemIdentifier: sequenceOf(r) })),
    );
    expect(published).toEqual([events[0]]);
    // Nothing after the failure is even attempted, so one order's events never overtake each other.
    expect(attempted).toEqual([events[0]!.id, events[1]!.id]);
    expect(errors).toHaveLength(1);
    expect(errors[0]?.eventID).toBe(records[1]!.eventID);
    expect(String(errors[0]?.error)).toContain('PubAck');
  });

  it('a record without an outbox event fails and is reported, never skipped', async () => {
    const good = orderEvent('o-1');
    const notOutbox = streamRecord({ pk: 'ORDER#o-1', sk: 'ORDER', kind: 'order', status: 'PENDING' });
    const later = orderEvent('o-2');
    const records = [outboxRecord(good), notOutbox, outboxRecord(later)];
    const { publisher, published } = fakePublisher();
    const { errors, onError } = recordingErrors();

    const response = await forwardEvents(publisher, onError)(records);

    expect(response.batchItemFailures).toEqual(
      records.slice(1).map((r) => ({ itemIdentifier: sequenceOf(r) })),
    );
    expect(published).toEqual([good]);
    expect(errors.map((e) => e.eventID)).toEqual([notOutbox.eventID]);
  });

  it('a record without a new image fails and is reported', async () => {
    const removed: DynamoDBRecord = { ...outboxRecord(orderEvent('o-1')), eventName: 'REMOVE' };
    delete removed.dynamodb!.NewImage;
    const { publisher, published } = fakePublisher();
    const response = await forwardEvents(publisher, () => {})([removed]);
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: sequenceOf(removed) }]);
    expect(published).toEqual([]);
  });

  it.each([
    ['not JSON', '{"specversion":'],
    ['an unknown type', (e: CloudEvent) => JSON.stringify({ ...e, type: 'order.shipped' })],
    [
      'data that breaks its schema',
      (e: CloudEvent) => JSON.stringify({ ...e, data: { orderId: e.subject } }),
    ],
    ['a wrong specversion', (e: CloudEvent) => JSON.stringify({ ...e, specversion: '0.3' })],
    ['a non-ISO time', (e: CloudEvent) => JSON.stringify({ ...e, time: 'yesterday' })],
  ])('an outbox event with %s fails and is reported', async (_what, corrupt) => {
    const event = orderEvent('o-1');
    const body = typeof corrupt === 'string' ? corrupt : corrupt(event);
    const bad = outboxRecord(event, { event: body });
    const next = outboxRecord(orderEvent('o-1', 'STOCK_RESERVED'));
    const { publisher, published } = fakePublisher();
    const { errors, onError } = recordingErrors();

    const response = await forwardEvents(publisher, onError)([bad, next]);

    expect(response.batchItemFailures).toEqual([
      { itemIdentifier: sequenceOf(bad) },
      { itemIdentifier: sequenceOf(next) },
    ]);
    expect(published).toEqual([]);
    expect(errors).toHaveLength(1);
  });
});

describe('eventFromRecord', () => {
  it('returns the stored CloudEvent exactly', () => {
    const event = orderEvent('o-9');
    expect(eventFromRecord(outboxRecord(event))).toEqual(event);
  });

  it('rejects an outbox item whose event attribute is not a string', () => {
    const event = orderEvent('o-9');
    expect(() => eventFromRecord(outboxRecord(event, { event }))).toThrow(/not an outbox event/);
  });
});
