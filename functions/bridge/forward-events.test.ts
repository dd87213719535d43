import type { Context, DynamoDBRecord } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { createEvent, type CloudEvent } from '../../events/envelope.ts';
import type { EventPublisher, OutgoingMessage } from '../../shared/nats.ts';
import { storedEventOfRecord } from '../../shared/outbox/read.ts';
import { sequenceEvents } from '../../shared/outbox/write.ts';
import { outboxRecord } from '../../tests/support/outbox-records.ts';
import { eventBridge, type BridgeOptions } from './forward-events.ts';

/*
 * The bridge against a publisher that records what it was sent: ordering per aggregate, pipelining
 * across aggregates, hold-back of one failed aggregate only, forwarding what was written, time, and
 * the kept connection's check. tests/e2e/bridge-outages.test.ts runs it against real nats-servers.
 */

function orderEvents(orderId: string, count: number): CloudEvent[] {
  const events = Array.from({ length: count }, (_, index) =>
    createEvent('order.status_changed', {
      source: 'order-saga/orders',
      subject: orderId,
      data: {
        orderId,
        status: 'PENDING',
        sagaState: 'STARTED',
        previousStatus: 'PENDING',
        previousSagaState: 'STARTED',
      },
      id: `${orderId}-event-${index + 1}`,
    }),
  );
  return sequenceEvents(events, 0);
}

/** Records every publish; fails the ids in `failing`; each PubAck comes after `delayMs`. */
function fakePublisher(
  options: {
    failing?: ReadonlySet<string>;
    delayMs?: number;
    alive?: boolean;
    /** Ids the stream holds already: answered with a duplicate PubAck. */
    stored?: ReadonlySet<string>;
  } = {},
) {
  const sent: OutgoingMessage[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let closed = false;
  const publisher: EventPublisher = {
    async publish(message) {
      inFlight += 1;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((resolve) => setTimeout(resolve, options.delayMs ?? 1));
      inFlight -= 1;
      if (options.failing?.has(message.id)) throw new Error('no PubAck within 5000 ms');
      sent.push(message);
      return { stream: 'ORDERS', seq: sent.length, duplicate: options.stored?.has(message.id) ?? false };
    },
    isAlive: async () => options.alive ?? true,
    isClosed: () => closed,
    close: async () => {
      closed = true;
    },
  };
  return { publisher, sent, maxInFlight: () => maxInFlight };
}

function bridgeWith(publishers: EventPublisher[], extra: Partial<BridgeOptions> = {}) {
  const errors: string[] = [];
  const skipped: string[] = [];
  const reconnects: string[] = [];
  let connects = 0;
  const bridge = eventBridge({
    connect: async () => {
      const next = publishers[connects++];
      if (!next) throw new Error('connection refused');
      return next;
    },
    onError: (_error, record) => errors.push(record.eventID!),
    onUnpublishable: (_error, record) => skipped.push(record.eventID!),
    onReconnect: (why) => reconnects.push(why),
    ...extra,
  });
  return { bridge, errors, skipped, reconnects, connects: () => connects };
}

const idsOf = (messages: OutgoingMessage[], orderId: string) =>
  messages.filter((message) => JSON.parse(message.body).subject === orderId).map((message) => message.id);
const failedOf = (response: { batchItemFailures: Array<{ itemIdentifier: string }> }) =>
  response.batchItemFailures.map((failure) => failure.itemIdentifier).sort();
const sequenceOf = (record: DynamoDBRecord) => record.dynamodb!.SequenceNumber!;

/** Interleaves the orders' events as one stream shard would hold them. */
function interleaved(...orders: CloudEvent[][]): Array<{ event: CloudEvent; record: DynamoDBRecord }> {
  const out: Array<{ event: CloudEvent; record: DynamoDBRecord }> = [];
  for (let index = 0; index < Math.max(...orders.map((events) => events.length)); index++)
    for (const events of orders) {
      const event = events[index];
      if (event) out.push({ event, record: outboxRecord(event) });
    }
  return out;
}

describe('the bridge', () => {
  it("publishes every event, each aggregate's in order, many aggregates' at once", async () => {
    const orders = Array.from({ length: 10 }, (_, index) => orderEvents(`o-${index}`, 4));
    const batch = interleaved(...orders);
    const fake = fakePublisher({ delayMs: 5 });
    const { bridge, errors } = bridgeWith([fake.publisher]);

    const response = await bridge.handle({ Records: batch.map(({ record }) => record) });

    expect(response.batchItemFailures).toEqual([]);
    expect(errors).toEqual([]);
    for (const events of orders)
      expect(idsOf(fake.sent, events[0]!.subject)).toEqual(events.map((event) => event.id));
    expect(fake.maxInFlight()).toBeGreaterThan(1);
    expect(fake.maxInFlight()).toBeLessThanOrEqual(orders.length);
  });

  it("holds back a failed aggregate's later events and publishes the other aggregates'", async () => {
    const [a, b] = [orderEvents('o-a', 3), orderEvents('o-b', 3)];
    const batch = interleaved(a, b);
    const fake = fakePublisher({ failing: new Set([a[1]!.id]) });
    const { bridge, errors } = bridgeWith([fake.publisher]);

    const response = await bridge.handle({ Records: batch.map(({ record }) => record) });

    expect(idsOf(fake.sent, 'o-a')).toEqual([a[0]!.id]);
    expect(idsOf(fake.sent, 'o-b')).toEqual(b.map((event) => event.id));
    const failedRecords = batch.filter(({ event }) => event.id === a[1]!.id || event.id === a[2]!.id);
    expect(failedOf(response)).toEqual(failedRecords.map(({ record }) => sequenceOf(record)).sort());
    expect(errors).toEqual([failedRecords[0]!.record.eventID]); // the held-back one is not an error
  });

  it("publishes one transaction's two events in sequence order, whichever record came first", async () => {
    const [statusChanged, completed] = orderEvents('o-1', 2);
    const other = orderEvents('o-2', 1)[0]!;
    const fake = fakePublisher();
    const { bridge } = bridgeWith([fake.publisher]);

    await bridge.handle({
      Records: [outboxRecord(completed!), outboxRecord(other), outboxRecord(statusChanged!)],
    });

    expect(idsOf(fake.sent, 'o-1')).toEqual([statusChanged!.id, completed!.id]);
  });

  it('on the retry, sends only what was not acknowledged yet', async () => {
    const [a, b] = [orderEvents('o-a', 2), orderEvents('o-b', 2)];
    const batch = interleaved(a, b);
    const failing = new Set([a[0]!.id]);
    const fake = fakePublisher({ failing });
    const { bridge } = bridgeWith([fake.publisher]);
    const first = await bridge.handle({ Records: batch.map(({ record }) => record) });
    failing.clear();

    // Lambda retries from the earliest failure: every record from there on comes again.
    const from = batch.findIndex(({ record }) =>
      first.batchItemFailures.some((f) => f.itemIdentifier === sequenceOf(record)),
    );
    const retry = await bridge.handle({ Records: batch.slice(from).map(({ record }) => record) });

    expect(retry.batchItemFailures).toEqual([]);
    expect(fake.sent.map((message) => message.id).sort()).toEqual(
      [...a, ...b].map((event) => event.id).sort(),
    );
  });

  it('reports each acknowledged event once, for the metrics: not a failed one, not a repeat on the retry', async () => {
    const [a, b] = [orderEvents('o-a', 2), orderEvents('o-b', 1)];
    const batch = interleaved(a, b);
    const failing = new Set([a[1]!.id]);
    const published: string[] = [];
    const { bridge } = bridgeWith([fakePublisher({ failing }).publisher], {
      onPublished: (record) => published.push(storedEventOfRecord(record).id),
    });
    const records = batch.map(({ record }) => record);
    await bridge.handle({ Records: records });
    expect(published.sort()).toEqual([a[0]!.id, b[0]!.id].sort());

    failing.clear();
    await bridge.handle({ Records: records });
    expect(published.sort()).toEqual([...a, ...b].map((event) => event.id).sort());
  });

  it('does not report an event the stream already held (a duplicate PubAck): it was published before', async () => {
    const [first, second] = orderEvents('o-d', 2);
    const published: string[] = [];
    const { bridge } = bridgeWith([fakePublisher({ stored: new Set([first!.id]) }).publisher], {
      onPublished: (_record, event) => published.push(event.id),
    });
    const response = await bridge.handle({ Records: [outboxRecord(first!), outboxRecord(second!)] });
    expect(response.batchItemFailures).toEqual([]);
    expect(published).toEqual([second!.id]);
  });

  it('forwards an event written under an older schema exactly as it was stored', async () => {
    const [event] = orderEvents('o-old', 1);
    // `data` as an earlier version wrote it: a field since renamed, another since required missing.
    const stored = JSON.stringify({ ...event, data: { orderId: 'o-old', state: 'PENDING' } });
    const fake = fakePublisher();
    const { bridge } = bridgeWith([fake.publisher]);

    const response = await bridge.handle({ Records: [outboxRecord(event!, { event: stored })] });

    expect(response.batchItemFailures).toEqual([]);
    expect(fake.sent).toEqual([{ subject: 'order.status_changed', id: event!.id, body: stored }]);
  });

  it('skips, and reports, a record that holds no publishable event; the rest go on', async () => {
    const [event] = orderEvents('o-1', 1);
    const broken = outboxRecord(event!, { event: '{"not": "a cloud event"' });
    const good = outboxRecord(orderEvents('o-1', 1)[0]!);
    const fake = fakePublisher();
    const { bridge, skipped } = bridgeWith([fake.publisher]);

    const response = await bridge.handle({ Records: [broken, good] });

    expect(response.batchItemFailures).toEqual([]);
    expect(skipped).toEqual([broken.eventID]);
    expect(fake.sent).toHaveLength(1);
  });

  it('does not start publishes it has no time left for, and reports them for the retry', async () => {
    const records = orderEvents('o-1', 3).map((event) => outboxRecord(event));
    const fake = fakePublisher();
    const notReached: number[] = [];
    const { bridge } = bridgeWith([fake.publisher], {
      reserveMs: 5_000,
      onNotReached: (late) => notReached.push(late.length),
    });
    const context = { getRemainingTimeInMillis: () => 4_000 } as Context;

    const response = await bridge.handle({ Records: records }, context);

    expect(fake.sent).toEqual([]);
    expect(failedOf(response)).toEqual(records.map(sequenceOf).sort());
    expect(notReached).toEqual([1]); // the first was not reached; the others were held back behind it
  });

  it('replaces a kept connection that does not answer, before publishing on it', async () => {
    const dead = fakePublisher({ alive: false });
    const fresh = fakePublisher();
    const { bridge, reconnects } = bridgeWith([dead.publisher, fresh.publisher]);
    await bridge.handle({ Records: [] }); // nothing to do: no connection needed
    await bridge.handle({ Records: [outboxRecord(orderEvents('o-1', 1)[0]!)] }); // connects `dead`

    const response = await bridge.handle({ Records: [outboxRecord(orderEvents('o-2', 1)[0]!)] });

    expect(response.batchItemFailures).toEqual([]);
    expect(reconnects).toEqual(['no answer within 1000 ms']);
    expect(fresh.sent).toHaveLength(1);
  });

  it('keeps every record in place while NATS cannot be reached', async () => {
    const records = orderEvents('o-1', 2).map((event) => outboxRecord(event));
    const { bridge, errors } = bridgeWith([]);

    const response = await bridge.handle({ Records: records });

    expect(failedOf(response)).toEqual(records.map(sequenceOf).sort());
    expect(errors).toHaveLength(1);
  });
});

describe('storedEventOfRecord', () => {
  it('reads the envelope and keeps the body byte for byte', () => {
    const [event] = orderEvents('o-1', 1);
    const stored = storedEventOfRecord(outboxRecord(event!));
    expect(stored).toMatchObject({
      aggregate: 'ORDER#o-1',
      id: event!.id,
      type: 'order.status_changed',
      subject: 'o-1',
      sequence: '000000000001',
    });
    expect(stored.body).toBe(JSON.stringify(event));
  });

  it('refuses a record that is not an outbox event', () => {
    const [event] = orderEvents('o-1', 1);
    expect(() => storedEventOfRecord(outboxRecord(event!, { kind: 'order' }))).toThrow(/not an outbox event/);
    expect(() =>
      storedEventOfRecord(outboxRecord(event!, { event: JSON.stringify({ ...event, type: 'audit.x' }) })),
    ).toThrow(/no subject of ours/);
  });
});
