import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEvent, formatSequence, type CloudEvent } from '../events/envelope.ts';
import { consumerDefinitions, ensureConsumers, type ConsumerDefinition } from '../infra/nats/consumers.ts';
import { startNatsServer, type LocalService } from '../infra/local/processes.ts';
import { streamDefinitions } from '../infra/nats/streams.ts';
import { connectEventPublisher, ensureStreams, type EventPublisher } from '../shared/nats.ts';
import {
  describeOutcome,
  SequenceTracker,
  startConsumer,
  type MessageOutcome,
  type RunningConsumer,
} from './consumer.ts';

const SOURCE = 'order-saga/orders';

/** An order event as the outbox writes it: `position` is its sequence among the order's events. */
function orderEvent(
  orderId: string,
  position: number,
  type: 'order.created' | 'order.completed' = 'order.completed',
): CloudEvent {
  const event =
    type === 'order.created'
      ? createEvent(type, {
          source: SOURCE,
          subject: orderId,
          data: {
            orderId,
            status: 'PENDING',
            sagaState: 'STARTED',
            customerId: 'c-1',
            items: [{ sku: 'SKU-1', quantity: 1 }],
            currency: 'eur',
          },
        })
      : createEvent(type, {
          source: SOURCE,
          subject: orderId,
          data: { orderId, status: 'COMPLETED', sagaState: 'COMPLETED', amount: 1250, currency: 'eur' },
        });
  return { ...event, sequence: formatSequence(position) } as CloudEvent;
}

describe('SequenceTracker', () => {
  const at = (subject: string, position: number, source = SOURCE) => ({
    source,
    subject,
    sequence: formatSequence(position),
  });

  it('takes the first event of a key and then each next one; anything at or below the highest is a duplicate', () => {
    const tracker = new SequenceTracker();
    expect(tracker.check(at('o-1', 1))).toEqual({ kind: 'new' });
    tracker.record(at('o-1', 1));
    expect(tracker.check(at('o-1', 1))).toEqual({ kind: 'duplicate', highest: 1 });
    expect(tracker.check(at('o-1', 2))).toEqual({ kind: 'new' });
    tracker.record(at('o-1', 2));
    expect(tracker.check(at('o-1', 1))).toEqual({ kind: 'duplicate', highest: 2 });
  });

  it('keeps keys apart by source and by subject', () => {
    const tracker = new SequenceTracker();
    tracker.record(at('o-1', 1));
    expect(tracker.check(at('o-2', 1))).toEqual({ kind: 'new' });
    expect(tracker.check(at('o-1', 1, 'order-saga/payments'))).toEqual({ kind: 'new' });
    // A separator in the values cannot make two keys one.
    tracker.record({ source: 'a/b', subject: 'c', sequence: formatSequence(1) });
    expect(tracker.check({ source: 'a', subject: 'b/c', sequence: formatSequence(1) })).toEqual({
      kind: 'new',
    });
  });

  it('takes a first sighting above 1 as new: an empty tracker cannot know what came before', () => {
    expect(new SequenceTracker().check(at('o-1', 7))).toEqual({ kind: 'new' });
  });

  it('reports a gap, remembers the missing sequences, and takes them when they come late (a replay)', () => {
    const tracker = new SequenceTracker();
    tracker.record(at('o-1', 1));
    expect(tracker.check(at('o-1', 5))).toEqual({ kind: 'gap', missing: { from: 2, to: 4 } });
    tracker.record(at('o-1', 5));
    expect(tracker.missing(SOURCE, 'o-1')).toEqual([{ from: 2, to: 4 }]);

    expect(tracker.check(at('o-1', 3))).toEqual({ kind: 'late' });
    tracker.record(at('o-1', 3));
    expect(tracker.missing(SOURCE, 'o-1')).toEqual([
      { from: 2, to: 2 },
      { from: 4, to: 4 },
    ]);
    expect(tracker.check(at('o-1', 3))).toEqual({ kind: 'duplicate', highest: 5 });
    tracker.record(at('o-1', 2));
    tracker.record(at('o-1', 4));
    expect(tracker.missing(SOURCE, 'o-1')).toEqual([]);
    expect(tracker.check(at('o-1', 6))).toEqual({ kind: 'new' });
  });

  it('recording a duplicate again changes nothing', () => {
    const tracker = new SequenceTracker();
    tracker.record(at('o-1', 2));
    tracker.record(at('o-1', 1));
    tracker.record(at('o-1', 2));
    expect(tracker.check(at('o-1', 3))).toEqual({ kind: 'new' });
    expect(tracker.missing(SOURCE, 'o-1')).toEqual([]);
  });
});

describe('describeOutcome', () => {
  it('says how to get a gap replayed', () => {
    const line = describeOutcome({ kind: 'gap', event: orderEvent('o-9', 4), missing: { from: 2, to: 3 } });
    expect(line).toBe(
      'GAP: handled order.completed o-9 seq 4, but sequences 2-3 of order-saga/orders for o-9 never arrived: lost on the way, or given up on after max deliver; replay them: npm run events:replay -- --order o-9',
    );
  });
});

/*
 * Two instances of one service in one queue group, against a server of the test's own. The tracker
 * is shared, as a service's database would be shared by its instances.
 */
describe('two instances in one queue group', () => {
  // A short ack wait, so that a message whose instance died comes back within the test.
  const definition: ConsumerDefinition = {
    ...consumerDefinitions().find((candidate) => candidate.name === 'notifications-orders')!,
    ackWaitMs: 1000,
  };
  let nats: LocalService;
  let publisher: EventPublisher;
  const tracker = new SequenceTracker();
  const instances: { name: string; connection: NatsConnection; running: RunningConsumer }[] = [];
  const handled: { instance: string; event: CloudEvent }[] = [];
  const outcomes: { instance: string; outcome: MessageOutcome }[] = [];
  /** An instance that handles this event id dies before it can ack it. */
  let dieAfterHandling: string | undefined;

  const publish = (event: CloudEvent, id = event.id) =>
    publisher.publish({ subject: event.type, id, body: JSON.stringify({ ...event, id }) });

  async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 15_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline)
        throw new Error(
          `timed out waiting for ${what}: ${JSON.stringify(outcomes.map((o) => [o.instance, describeOutcome(o.outcome)]))}`,
        );
      await sleep(25);
    }
  }
  const outcomeFor = (id: string, kind: MessageOutcome['kind']) =>
    outcomes.find(({ outcome }) => outcome.kind === kind && 'event' in outcome && outcome.event.id === id);

  beforeAll(async () => {
    nats = await startNatsServer();
    await ensureStreams(nats.url, streamDefinitions(1));
    await ensureConsumers(nats.url, [definition]);
    publisher = await connectEventPublisher(nats.url);
    for (const name of ['a', 'b']) {
      const connection = await connect({ servers: nats.url, name: `instance-${name}` });
      const running = await startConsumer({
        connection,
        consumer: definition,
        tracker,
        handle: async (event) => {
          handled.push({ instance: name, event });
          // Handled (and, in a real service, committed), then the process dies before its ack.
          if (event.id === dieAfterHandling) await connection.close();
        },
        report: (outcome) => outcomes.push({ instance: name, outcome }),
      });
      instances.push({ name, connection, running });
    }
  });

  afterAll(async () => {
    for (const { connection, running } of instances) {
      if (!connection.isClosed()) await running.stop();
      await connection.close();
    }
    await publisher?.close();
    await nats?.stop();
  });

  it('handles each message once, by one instance or the other, each order in sequence order', async () => {
    const events = ['o-1', 'o-2', 'o-3', 'o-4', 'o-5', 'o-6'].flatMap((orderId) => [
      orderEvent(orderId, 1, 'order.created'),
      orderEvent(orderId, 2),
    ]);
    for (const event of events) await publish(event);
    await until('every event handled', () => (handled.length >= events.length ? true : undefined));
    await sleep(200); // nothing more may come

    expect(handled.map(({ event }) => event.id).sort()).toEqual(events.map((event) => event.id).sort());
    const by = (instance: string) => handled.filter((entry) => entry.instance === instance).length;
    // 12 messages spread at random over two members: all at one has a chance of 2 in 4096.
    expect(by('a') + by('b')).toBe(events.length);
    expect(Math.min(by('a'), by('b'))).toBeGreaterThan(0);
    // The group has one message in flight at a time: the stream's order is the handling order.
    expect(handled.map(({ event }) => event.id)).toEqual(events.map((event) => event.id));
    expect(outcomes.every(({ outcome }) => outcome.kind === 'handled')).toBe(true);
  });

  it('skips a redelivered message that was handled but never acked (its instance died), and carries on', async () => {
    const event = orderEvent('o-7', 1, 'order.created');
    dieAfterHandling = event.id;
    await publish(event);

    // After the ack wait the server gives it to the surviving instance, which drops it by sequence.
    const duplicate = await until('the redelivery', () => outcomeFor(event.id, 'duplicate'));
    const dead = handled.find((entry) => entry.event.id === event.id)!.instance;
    expect(duplicate.instance).not.toBe(dead);
    expect(handled.filter((entry) => entry.event.id === event.id)).toHaveLength(1);
    const survivor = instances.find((instance) => instance.name !== dead)!;
    await instances.find((instance) => instance.name === dead)!.running.done.catch(() => undefined);

    const next = orderEvent('o-7', 2);
    await publish(next);
    expect((await until('the next event', () => outcomeFor(next.id, 'handled'))).instance).toBe(
      survivor.name,
    );
  });

  it('reports a gap with the replay command, takes the missing event when it comes, and drops a copy of an old one', async () => {
    const [first, second, third] = [1, 2, 3].map((position) => orderEvent('o-8', position));
    await publish(first!);
    await publish(third!);
    const gap = await until('the gap', () => outcomeFor(third!.id, 'gap'));
    expect(describeOutcome(gap.outcome)).toContain('sequence 2 of order-saga/orders for o-8 never arrived');
    expect(describeOutcome(gap.outcome)).toContain('npm run events:replay -- --order o-8');

    await publish(second!);
    await until('the late event', () => outcomeFor(second!.id, 'late'));
    // The same event stored again under another message id (as a replay after the duplicate window is).
    await publish(first!, `${first!.id}-again`);
    await until('the copy', () => outcomeFor(`${first!.id}-again`, 'duplicate'));
    expect(
      handled.filter((entry) => entry.event.subject === 'o-8').map((entry) => Number(entry.event.sequence)),
    ).toEqual([1, 3, 2]);
  });
});
