import { AckPolicy, DeliverPolicy, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STREAMS } from '../../events/subjects.ts';
import { ensureStreams } from '../../shared/nats.ts';
import { startNatsServer, type LocalService } from '../local/processes.ts';
import {
  consumerDefinitions,
  consumerDifferences,
  ConsumerSettingsDifferError,
  ConsumerStreamMissingError,
  ConsumerUpdateError,
  describeConsumerDifference,
  ensureConsumers,
  type ConsumerDefinition,
} from './consumers.ts';
import { streamDefinitions } from './streams.ts';

const definitions = consumerDefinitions();
const named = (name: string) => definitions.find((definition) => definition.name === name)!;

describe('consumerDefinitions', () => {
  it('gives each service one consumer per stream it reads, in its own queue group', () => {
    expect(
      definitions.map((d) => [d.name, d.stream, d.filterSubject, d.deliverGroup, d.deliverSubject]),
    ).toEqual([
      ['fulfilment-orders', 'ORDERS', 'order.*', 'fulfilment', 'deliver.fulfilment.orders'],
      ['notifications-orders', 'ORDERS', 'order.*', 'notifications', 'deliver.notifications.orders'],
      ['notifications-payments', 'PAYMENTS', 'payment.*', 'notifications', 'deliver.notifications.payments'],
      ['analytics-orders', 'ORDERS', 'order.*', 'analytics', 'deliver.analytics.orders'],
      ['analytics-inventory', 'INVENTORY', 'inventory.*', 'analytics', 'deliver.analytics.inventory'],
      ['analytics-payments', 'PAYMENTS', 'payment.*', 'analytics', 'deliver.analytics.payments'],
    ]);
  });

  it('filters on the whole stream, one subject each (nats-server 2.9), and names what the service acts on', () => {
    for (const definition of definitions) {
      expect(definition.filterSubject).toBe(STREAMS[definition.stream]);
      const prefix = STREAMS[definition.stream].slice(0, -1);
      expect(definition.handles.every((subject) => subject.startsWith(prefix))).toBe(true);
    }
    expect(named('fulfilment-orders').handles).toEqual(['order.completed', 'order.cancelled']);
    expect(named('notifications-payments').handles).toHaveLength(5);
    expect(named('analytics-inventory').handles).toHaveLength(4);
  });

  it('delivers outside every stream, handles one message at a time per group, and retries a bounded number of times', () => {
    for (const definition of definitions) {
      expect(
        Object.values(STREAMS).some((subjects) =>
          definition.deliverSubject.startsWith(subjects.slice(0, -1)),
        ),
      ).toBe(false);
      expect(definition).toMatchObject({ ackWaitMs: 30_000, maxDeliver: 5, maxAckPending: 1 });
    }
    expect(new Set(definitions.map((d) => d.deliverSubject)).size).toBe(definitions.length);
  });
});

describe('consumerDifferences', () => {
  const fulfilment = named('fulfilment-orders');
  const asDefined = {
    filter_subject: 'order.*',
    deliver_subject: 'deliver.fulfilment.orders',
    deliver_group: 'fulfilment',
    ack_wait: nanos(30_000),
    max_deliver: 5,
    max_ack_pending: 1,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.Explicit,
  };

  it('finds none when the decided settings match', () => {
    expect(consumerDifferences(fulfilment, asDefined)).toEqual([]);
  });

  it('names every difference and whether JetStream can change it in place', () => {
    const found = consumerDifferences(fulfilment, {
      filter_subject: 'order.completed',
      deliver_subject: 'elsewhere',
      ack_wait: nanos(60_000),
      max_deliver: -1,
      max_ack_pending: 1000,
      deliver_policy: DeliverPolicy.New,
      ack_policy: AckPolicy.All,
    });
    expect(found.map(describeConsumerDifference)).toEqual([
      'consumer ORDERS/fulfilment-orders: filter subject is order.completed on the server, the definition says order.*',
      'consumer ORDERS/fulfilment-orders: deliver subject is elsewhere on the server, the definition says deliver.fulfilment.orders',
      'consumer ORDERS/fulfilment-orders: deliver group is (none) on the server, the definition says fulfilment',
      'consumer ORDERS/fulfilment-orders: ack wait is 1m on the server, the definition says 30s',
      'consumer ORDERS/fulfilment-orders: max deliver is -1 on the server, the definition says 5',
      'consumer ORDERS/fulfilment-orders: max ack pending is 1000 on the server, the definition says 1',
      'consumer ORDERS/fulfilment-orders: deliver policy is new on the server, the definition says all (JetStream cannot change this in place: the consumer must be recreated)',
      'consumer ORDERS/fulfilment-orders: ack policy is all on the server, the definition says explicit (JetStream cannot change this in place: the consumer must be recreated)',
    ]);
  });

  it('reports a pull consumer of the same name as one difference that needs recreating', () => {
    expect(consumerDifferences(fulfilment, { ...asDefined, deliver_subject: undefined })).toEqual([
      {
        stream: 'ORDERS',
        consumer: 'fulfilment-orders',
        setting: 'kind',
        existing: 'pull',
        wanted: 'push',
        inPlace: false,
      },
    ]);
  });
});

/*
 * Against a server of the test's own: consumers that exist with other settings are never changed
 * silently, and what JetStream cannot change in place is said, not attempted.
 */
describe('ensureConsumers on a server of its own', () => {
  let nats: LocalService;
  let connection: NatsConnection;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startNatsServer();
    connection = await connect({ servers: nats.url });
    jsm = await jetstreamManager(connection);
  });

  afterAll(async () => {
    await connection?.close();
    await nats?.stop();
  });

  const refusal = async (run: () => Promise<unknown>): Promise<ConsumerSettingsDifferError> => {
    const error = await run().then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConsumerSettingsDifferError);
    return error as ConsumerSettingsDifferError;
  };

  it('says the streams must exist first', async () => {
    await expect(ensureConsumers(nats.url, definitions)).rejects.toBeInstanceOf(ConsumerStreamMissingError);
  });

  it('refuses a differing consumer, changing nothing; updates it in place with update: true; then leaves all alone', async () => {
    await ensureStreams(nats.url, streamDefinitions(1));
    // Someone else's fulfilment consumer: a minute to ack.
    const someoneElses: ConsumerDefinition = { ...named('fulfilment-orders'), ackWaitMs: 60_000 };
    expect(await ensureConsumers(nats.url, [someoneElses])).toMatchObject({ created: ['fulfilment-orders'] });

    const error = await refusal(() => ensureConsumers(nats.url, definitions));
    expect(error.differences.map(describeConsumerDifference)).toEqual([
      'consumer ORDERS/fulfilment-orders: ack wait is 1m on the server, the definition says 30s',
    ]);
    expect(error.needsRecreate).toBe(false);
    // Nothing changed, nothing created.
    expect((await jsm.consumers.info('ORDERS', 'fulfilment-orders')).config.ack_wait).toBe(nanos(60_000));
    await expect(jsm.consumers.info('PAYMENTS', 'notifications-payments')).rejects.toThrow(
      /consumer not found/,
    );

    expect(await ensureConsumers(nats.url, definitions, { update: true })).toEqual({
      created: definitions.filter((d) => d.name !== 'fulfilment-orders').map((d) => d.name),
      updated: ['fulfilment-orders'],
      recreated: [],
      unchanged: [],
    });
    const info = await jsm.consumers.info('ORDERS', 'fulfilment-orders');
    expect(info.config).toMatchObject({
      ack_wait: nanos(30_000),
      deliver_group: 'fulfilment',
      deliver_policy: 'all',
    });

    expect(await ensureConsumers(nats.url, definitions)).toEqual({
      created: [],
      updated: [],
      recreated: [],
      unchanged: definitions.map((d) => d.name),
    });
  });

  it('refuses what JetStream cannot change in place even with update: true, and recreates it only with recreate: true', async () => {
    const analytics = named('analytics-inventory');
    await jsm.consumers.delete('INVENTORY', analytics.name);
    await jsm.consumers.add('INVENTORY', {
      durable_name: analytics.name,
      deliver_subject: analytics.deliverSubject,
      deliver_group: analytics.deliverGroup,
      filter_subject: analytics.filterSubject,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(analytics.ackWaitMs),
      max_deliver: analytics.maxDeliver,
      max_ack_pending: analytics.maxAckPending,
      deliver_policy: DeliverPolicy.New,
    });

    const error = await refusal(() => ensureConsumers(nats.url, [analytics], { update: true }));
    expect(error.needsRecreate).toBe(true);
    expect(error.differences).toMatchObject([
      { setting: 'deliver policy', existing: 'new', wanted: 'all', inPlace: false },
    ]);
    expect((await jsm.consumers.info('INVENTORY', analytics.name)).config.deliver_policy).toBe('new');

    expect(await ensureConsumers(nats.url, [analytics], { update: true, recreate: true })).toMatchObject({
      recreated: [analytics.name],
    });
    expect((await jsm.consumers.info('INVENTORY', analytics.name)).config.deliver_policy).toBe('all');
  });

  it('explains the refusal to move a deliver subject while an instance listens on it', async () => {
    const notifications = named('notifications-orders');
    const moved = { ...notifications, deliverSubject: 'deliver.notifications.orders-v2' };
    const listener = connection.subscribe(notifications.deliverSubject, {
      queue: notifications.deliverGroup,
    });
    try {
      const error = await ensureConsumers(nats.url, [moved], { update: true }).catch(
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(ConsumerUpdateError);
      expect((error as Error).message).toMatch(/stop them first/);
    } finally {
      listener.unsubscribe();
    }
    await connection.flush();
    expect(await ensureConsumers(nats.url, [moved], { update: true })).toMatchObject({
      updated: [moved.name],
    });
  });
});
