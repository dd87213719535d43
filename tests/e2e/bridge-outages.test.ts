import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient, paginateScan } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createEvent } from '../../events/envelope.ts';
import { eventBridge } from '../../functions/bridge/forward-events.ts';
import {
  canConnect,
  freePort,
  spawnSupervised,
  waitUntil,
  type SupervisedProcess,
} from '../../infra/local/processes.ts';
import type { LocalRuntime } from '../../infra/local/runtime.ts';
import { streamDefinitions } from '../../infra/nats/streams.ts';
import { connectEventPublisher, ensureStreams } from '../../shared/nats.ts';
import { sequenceEvents } from '../../shared/outbox/write.ts';
import { readStoredEvents, type StoredEvent } from '../support/nats-events.ts';
import { outboxRecord } from '../support/outbox-records.ts';
import { pollUntil } from '../support/poll.ts';
import { shop } from '../support/shop.ts';
import { startTestRuntime } from '../support/target.ts';

/*
 * The bridge when NATS goes away: the whole runtime through an outage of its NATS (orders keep
 * flowing, and when NATS returns every event arrives exactly once, in order per aggregate, nothing
 * given up on: the stream readers retry without a count), and a connection cut while the bridge was "frozen" between invocations.
 */

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

/** A nats-server -js of this test's own, on a fixed port and store, so it can go away and come back. */
async function ownNats() {
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), 'order-saga-outage-'));
  let process: SupervisedProcess | undefined;
  const start = async () => {
    process = spawnSupervised('nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir]);
    await waitUntil('nats-server', () => canConnect('127.0.0.1', port), { timeoutMs: 20_000, process });
  };
  const stop = async () => {
    await process?.stop();
    process = undefined;
  };
  cleanups.push(async () => {
    await stop();
    await rm(storeDir, { recursive: true, force: true });
  });
  await start();
  return { url: `nats://127.0.0.1:${port}`, start, stop };
}

/** Every outbox event the runtime's tables hold, by id. */
async function outboxOf(runtime: LocalRuntime) {
  const client = new DynamoDBClient({
    region: 'us-east-1',
    endpoint: runtime.dynamodbEndpoint,
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const events: Array<{ id: string; source: string; subject: string; sequence: string }> = [];
  for (const table of Object.values(runtime.tableNames)) {
    for await (const page of paginateScan(
      { client },
      {
        TableName: table,
        FilterExpression: 'kind = :event',
        ExpressionAttributeValues: { ':event': { S: 'event' } },
      },
    )) {
      for (const item of page.Items ?? []) events.push(JSON.parse(String(unmarshall(item).event)));
    }
  }
  client.destroy();
  return events;
}

/** Exactly once by id, and each (source, subject)'s events on the streams in sequence order 1, 2, 3… */
function expectExactlyOnceInOrder(stored: StoredEvent[], expectedIds: string[]) {
  const ids = stored.map((entry) => entry.event.id);
  expect(new Set(ids).size).toBe(ids.length);
  expect([...ids].sort()).toEqual([...expectedIds].sort());
  const byAggregate = new Map<string, string[]>();
  for (const { event } of stored) {
    const key = `${event.source} ${event.subject}`;
    byAggregate.set(key, [...(byAggregate.get(key) ?? []), event.sequence]);
  }
  for (const sequences of byAggregate.values())
    expect(sequences).toEqual(sequences.map((_, index) => String(index + 1).padStart(12, '0')));
}

describe('NATS goes away while orders flow', () => {
  it('holds every event in place, then delivers each exactly once, in order', async () => {
    const nats = await ownNats();
    // The stream readers retry every 25 ms here, so the outage outlasts the 100 retries the mappings
    // used to allow many times over; the attempts are counted from the runtime's log.
    const attempts: number[] = [];
    const runtime = await startTestRuntime({
      config: { NATS_URL: nats.url },
      streamRetryDelayMs: 25,
      log: (line) => {
        const attempt = /→ \S*PublishEvents\S*: attempt (\d+) failed/.exec(line)?.[1];
        if (attempt) attempts.push(Number(attempt));
      },
    });
    cleanups.push(() => runtime.stop());
    const store = shop(runtime);
    const sku = store.sku();
    await store.putProduct(sku, 100);
    const place = () =>
      store.placeOrder({
        customerId: 'cust-outage',
        items: [{ sku, quantity: 1 }],
        paymentMethodId: 'pm_card_visa',
      });

    const before = await Promise.all([place(), place()]);
    await Promise.all(before.map((order) => store.settled(order.orderId)));
    await runtime.drained();

    await nats.stop();
    const during = await Promise.all([place(), place(), place()]);
    for (const order of during)
      expect(await store.settled(order.orderId)).toMatchObject({ status: 'COMPLETED' });
    // Down until the bridge has retried past the old budget of 100 attempts: nothing is given up on.
    await pollUntil(
      'the bridge retried 100 times',
      async () => Math.max(0, ...attempts),
      (n) => n > 100,
      120_000,
    );
    await nats.start();

    const outbox = await outboxOf(runtime);
    const stored = await pollUntil(
      'every outbox event on the streams',
      () => readStoredEvents(nats.url),
      (events) => events.length >= outbox.length,
      60_000,
    );
    expectExactlyOnceInOrder(
      stored,
      outbox.map((event) => event.id),
    );
    for (const order of [...before, ...during])
      expect(
        stored.filter((entry) => entry.event.subject === order.orderId).map((entry) => entry.event.type),
      ).toContain('order.completed');
  }, 180_000);
});

/** A TCP relay in front of NATS that can go silent on its open connections, as a frozen Lambda's do. */
async function relayTo(natsUrl: string) {
  const target = new URL(natsUrl);
  const pairs: Array<{ client: Socket; upstream: Socket; silent: boolean }> = [];
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port), target.hostname);
    const pair = { client, upstream, silent: false };
    pairs.push(pair);
    client.on('data', (chunk) => pair.silent || upstream.write(chunk));
    upstream.on('data', (chunk) => pair.silent || client.write(chunk));
    for (const socket of [client, upstream]) socket.on('error', () => {});
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  cleanups.push(async () => {
    for (const { client, upstream } of pairs) {
      client.destroy();
      upstream.destroy();
    }
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    /** Every connection open now drops what it carries, without closing (no FIN, no RST). */
    silenceOpenConnections: () => pairs.forEach((pair) => (pair.silent = true)),
  };
}

describe('a bridge frozen between invocations', () => {
  it('finds its dead connection at once and publishes on a new one, without waiting out a PubAck', async () => {
    const natsUrl = inject('natsUrl');
    await ensureStreams(natsUrl, streamDefinitions(1), { update: false }).catch(() => undefined);
    const relay = await relayTo(natsUrl);
    const reconnects: string[] = [];
    const failures: unknown[] = [];
    const bridge = eventBridge({
      // A PubAck wait far longer than the test's own timeout: waiting it out would fail the test.
      connect: () => connectEventPublisher(relay.url, { timeoutMs: 120_000, pingIntervalMs: 600_000 }),
      aliveTimeoutMs: 500,
      onError: (error) => failures.push(error),
      onUnpublishable: (error) => failures.push(error),
      onReconnect: (why) => reconnects.push(why),
    });
    cleanups.push(() => bridge.close());
    const orderId = `frozen-${Date.now()}`;
    const events = sequenceEvents(
      [1, 2].map(() =>
        createEvent('order.cancelled', {
          source: 'order-saga/orders',
          subject: orderId,
          data: { orderId, status: 'CANCELLED', sagaState: 'COMPENSATED', reason: 'CUSTOMER_CANCELLED' },
        }),
      ),
      0,
    );

    expect(await bridge.handle({ Records: [outboxRecord(events[0]!)] })).toEqual({ batchItemFailures: [] });
    relay.silenceOpenConnections(); // frozen: the connection dies under it, unseen
    const thawed = await bridge.handle({ Records: [outboxRecord(events[1]!)] });

    expect(thawed).toEqual({ batchItemFailures: [] });
    expect(failures).toEqual([]);
    expect(reconnects).toEqual(['no answer within 500 ms']);
    const stored = (await readStoredEvents(natsUrl)).filter((entry) => entry.event.subject === orderId);
    expect(stored.map((entry) => entry.event.id)).toEqual(events.map((event) => event.id));
  }, 60_000);
});
