import { CreateTableCommand, DeleteTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { millis, PermissionViolationError, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { DynamoDBBatchResponse, DynamoDBRecord } from 'aws-lambda';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { OrderStatus, SagaState } from '../../events/common.ts';
import {
  createEvent,
  formatSequence,
  parseEvent,
  type CloudEvent,
  type NewEvent,
} from '../../events/envelope.ts';
import { STREAMS, type StreamName } from '../../events/subjects.ts';
import { eventBridge } from '../../functions/bridge/forward-events.ts';
import { ORDER_SOURCE } from '../../functions/orders/order.ts';
import { PAYMENT_SOURCE } from '../../functions/payments/payment.ts';
import { makeCertificates } from '../../infra/nats/certs.ts';
import { consumerDefinitions, ensureConsumers } from '../../infra/nats/consumers.ts';
import { streamDefinitions } from '../../infra/nats/streams.ts';
import type { NatsAccess } from '../../shared/nats-access.ts';
import {
  connectEventPublisher,
  connectionOptions,
  ensureStreams,
  type EventPublisher,
  type OutgoingMessage,
} from '../../shared/nats.ts';
import { outboxPuts, sequenceEvents } from '../../shared/outbox/write.ts';
import { startNatsCluster, supportsSyncInterval, type NatsCluster } from '../support/nats-cluster.ts';
import { outboxRecord } from '../support/outbox-records.ts';
import { pollUntil } from '../support/poll.ts';
import {
  SequenceTracker,
  startConsumer,
  type MessageOutcome,
  type RunningConsumer,
} from '../../examples/consumer.ts';

/*
 * The production cluster's configuration (infra/nats/cluster: three nodes, TLS on clients and
 * routes, NKEY users with per-role permissions), run on loopback: a node dying under the bridge's
 * publishes loses and duplicates nothing, and only the right people get in and do the right things.
 */

const ORDERS = 50;
const EVENTS_PER_ORDER = 5;
/** Lambda's batch size for the bridge's event source mapping. */
const BATCH_SIZE = 100;
/** How fast the outbox items appear on the table's stream. */
const RECORDS_PER_SECOND = 25;
/** Records that appear only after the killed node is restarted. */
const AFTER_RESTART = 50;
/** Lambda polls a shard about four times a second. */
const POLL_MS = 250;
let cluster: NatsCluster;
const connections: NatsConnection[] = [];

/** Retries `attempt` (idempotent) until it succeeds; the last error says why it never did. */
async function eventually<T>(what: string, attempt: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline)
        throw new Error(`${what} kept failing for ${timeoutMs} ms`, { cause: error });
      await sleep(250);
    }
  }
}

/** The permission violation a request ended with (nats.js wraps it in a RequestError), else undefined. */
async function permissionViolation(request: Promise<unknown>): Promise<PermissionViolationError | undefined> {
  try {
    await request;
    return undefined;
  } catch (error) {
    const cause =
      error instanceof Error && !(error instanceof PermissionViolationError) ? error.cause : error;
    return cause instanceof PermissionViolationError ? cause : undefined;
  }
}

async function connectAs(access: NatsAccess): Promise<NatsConnection> {
  const connection = await connect({ ...connectionOptions(access), timeout: 5_000, maxReconnectAttempts: 0 });
  connections.push(connection);
  return connection;
}

const ROOT = join(import.meta.dirname, '..', '..');

/** The environment that points a script at the cluster as `role`, as docs/nats.md shows it. */
const clusterEnv = (role: 'consumer' | 'replay') => ({
  NATS_URL: cluster.servers.join(','),
  NATS_CREDS: cluster.seedFile(role),
  NATS_TLS_CA: join(cluster.dir, '.nats', 'certs', 'ca.pem'),
});

/** Runs one of the project's scripts as `npm run` does, to its end. */
function runScript(script: string, argv: string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...argv], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

beforeAll(async () => {
  cluster = await startNatsCluster();
  // Right after the meta leader is elected, peers may not have reported in yet: retry (idempotent).
  await eventually(
    'ensureStreams as admin',
    () => ensureStreams(cluster.access('admin'), streamDefinitions(3)),
    60_000,
  );
  for (const stream of ['ORDERS', 'PAYMENTS', 'INVENTORY']) await cluster.waitForStreamReplicas(stream);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(connections.map((connection) => connection.close()));
  await cluster?.stop();
});

/** One order's life on `order.*`, sequenced 1…5 as the order service commits it. */
function orderEvents(orderId: string): CloudEvent[] {
  const base = { source: ORDER_SOURCE, subject: orderId };
  const moves: Array<[OrderStatus, SagaState, OrderStatus, SagaState]> = [
    ['PENDING', 'STARTED', 'STOCK_RESERVED', 'STOCK_RESERVED'],
    ['STOCK_RESERVED', 'STOCK_RESERVED', 'PAYMENT_PENDING', 'PAYMENT_PENDING'],
    ['PAYMENT_PENDING', 'PAYMENT_PENDING', 'COMPLETED', 'COMPLETED'],
  ];
  const events: NewEvent[] = [
    createEvent('order.created', {
      ...base,
      data: {
        orderId,
        customerId: 'customer-1',
        items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 1250 }],
        currency: 'eur',
        status: 'PENDING',
        sagaState: 'STARTED',
      },
    }),
    ...moves.map(([previousStatus, previousSagaState, status, sagaState]) =>
      createEvent('order.status_changed', {
        ...base,
        data: { orderId, previousStatus, previousSagaState, status, sagaState },
      }),
    ),
    createEvent('order.completed', {
      ...base,
      data: { orderId, status: 'COMPLETED', sagaState: 'COMPLETED', amount: 2500, currency: 'eur' },
    }),
  ];
  return sequenceEvents(events, 0);
}

/** What the bridge publishes for an event. */
const messageOf = (event: CloudEvent): OutgoingMessage => ({
  subject: event.type,
  id: event.id,
  body: JSON.stringify(event),
});

/** Every message of `stream`, read with an ordered consumer (deleted afterwards). */
async function readStream(access: NatsAccess, stream: string) {
  const connection = await connectAs(access);
  const { state } = await (await jetstreamManager(connection)).streams.info(stream);
  const consumer = await jetstream(connection).consumers.get(stream);
  const stored: Array<{ seq: number; msgId: string | undefined; body: string }> = [];
  const deadline = Date.now() + 30_000;
  while (stored.length < state.messages) {
    if (Date.now() > deadline)
      throw new Error(`read ${stored.length} of ${state.messages} messages of ${stream}`);
    const batch = await consumer.fetch({ max_messages: state.messages - stored.length, expires: 2_000 });
    for await (const message of batch)
      stored.push({ seq: message.seq, msgId: message.headers?.get('Nats-Msg-Id'), body: message.string() });
  }
  await consumer.delete();
  await connection.close();
  return stored;
}

/** The names of the consumers each stream has now, as admin sees them. */
async function consumerNames(): Promise<Record<StreamName, string[]>> {
  const jsm = await jetstreamManager(await connectAs(cluster.access('admin')));
  const names = {} as Record<StreamName, string[]>;
  for (const stream of Object.keys(STREAMS) as StreamName[]) {
    names[stream] = [];
    for await (const info of jsm.consumers.list(stream)) names[stream].push(info.name);
    names[stream].sort();
  }
  return names;
}

interface ShardRun {
  invocations: number;
  /** Invocations whose response reported failed records. */
  partlyFailed: number;
  /** Records handed to the bridge again because an earlier one of their batch failed. */
  refed: number;
  largestBatch: number;
}

/**
 * What the event source mapping does with one shard: every poll, a batch of up to BATCH_SIZE
 * records from the checkpoint on (as far as the shard holds records yet), to `handle`; a response
 * with failures moves the checkpoint to just before the earliest failed record, and the next batch
 * starts there; without failures, past the batch. Until the checkpoint is past the last record.
 */
async function runShard(
  shard: readonly DynamoDBRecord[],
  handle: (batch: DynamoDBRecord[]) => Promise<DynamoDBBatchResponse>,
  options: { available: () => number; stopped: () => boolean; timeoutMs: number },
): Promise<ShardRun> {
  const position = new Map(shard.map((record, index) => [record.dynamodb!.SequenceNumber!, index]));
  const run: ShardRun = { invocations: 0, partlyFailed: 0, refed: 0, largestBatch: 0 };
  const deadline = Date.now() + options.timeoutMs;
  let checkpoint = 0;
  while (checkpoint < shard.length) {
    if (options.stopped()) throw new Error('the test ended');
    if (Date.now() > deadline)
      throw new Error(
        `the shard is at record ${checkpoint} of ${shard.length} after ${options.timeoutMs} ms`,
      );
    const polled = Date.now();
    const end = Math.min(options.available(), checkpoint + BATCH_SIZE);
    if (end > checkpoint) {
      const batch = shard.slice(checkpoint, end);
      run.invocations++;
      run.largestBatch = Math.max(run.largestBatch, batch.length);
      const { batchItemFailures } = await handle(batch);
      if (batchItemFailures.length === 0) checkpoint = end;
      else {
        const failed = batchItemFailures.map((failure) => position.get(failure.itemIdentifier));
        if (failed.some((index) => index === undefined || index < checkpoint || index >= end))
          throw new Error(`a failure names no record of the batch: ${JSON.stringify(batchItemFailures)}`);
        const earliest = Math.min(...(failed as number[]));
        run.partlyFailed++;
        run.refed += end - earliest;
        checkpoint = earliest;
      }
    }
    await sleep(Math.max(0, polled + POLL_MS - Date.now()));
  }
  return run;
}

describe('the three-node cluster from infra/nats/cluster', () => {
  it('stores every event the bridge forwards exactly once and in order per order while the ORDERS leader is killed and restarted', async () => {
    const run = randomUUID().slice(0, 8);
    const orders = Array.from({ length: ORDERS }, (_, index) =>
      orderEvents(`order-${run}-${String(index).padStart(3, '0')}`),
    );
    const total = ORDERS * EVENTS_PER_ORDER;
    // The shard: the orders' commits interleaved, each order's events in its commit order.
    const shard: DynamoDBRecord[] = [];
    for (let step = 0; step < EVENTS_PER_ORDER; step++)
      for (const events of orders) shard.push(outboxRecord(events[step]!));
    expect(shard).toHaveLength(total);

    // The bridge as Lambda runs it, on the bridge user; its connections counted and kept to close.
    const publishers: EventPublisher[] = [];
    const counts = { acked: 0, duplicates: 0, publishFailures: 0 };
    const bridgeErrors: unknown[] = [];
    const unpublishable: unknown[] = [];
    const reconnects: string[] = [];
    const bridge = eventBridge({
      connect: async () => {
        const publisher = await connectEventPublisher(cluster.access('bridge'), {
          timeoutMs: 2_000,
          name: 'test-bridge',
        });
        publishers.push(publisher);
        return {
          async publish(message) {
            try {
              const ack = await publisher.publish(message);
              counts.acked++;
              if (ack.duplicate) counts.duplicates++;
              return ack;
            } catch (error) {
              counts.publishFailures++;
              throw error;
            }
          },
          isAlive: (timeoutMs) => publisher.isAlive(timeoutMs),
          isClosed: () => publisher.isClosed(),
          close: () => publisher.close(),
        };
      },
      aliveTimeoutMs: 1_000,
      onError: (error) => bridgeErrors.push(error),
      onUnpublishable: (error) => unpublishable.push(error),
      onReconnect: (why) => reconnects.push(why),
    });

    let stopped = false;
    const started = Date.now();
    let restartedAt: number | undefined;
    // The writers commit at RECORDS_PER_SECOND; the last AFTER_RESTART commits come only once the
    // killed node runs again (its election may take 4-9 s), so that it catches up under writes.
    const available = () => {
      const paced = (since: number) => Math.floor(((Date.now() - since) * RECORDS_PER_SECOND) / 1000);
      const before = Math.min(total - AFTER_RESTART, 1 + paced(started));
      return restartedAt === undefined ? before : Math.min(total, before + paced(restartedAt));
    };
    try {
      const feeding = runShard(shard, (batch) => bridge.handle({ Records: batch }), {
        available,
        stopped: () => stopped,
        timeoutMs: 45_000,
      });
      // Awaited below; until then a failure must not count as unhandled.
      feeding.catch(() => {});

      await pollUntil(
        'the first events are acknowledged',
        async () => counts.acked,
        (n) => n >= 50,
        30_000,
      );
      const leader = await cluster.streamLeader('ORDERS');
      const pid = leader.pid;
      const killedAt = Date.now();
      await cluster.kill(leader);
      const ackedBeforeKill = counts.acked;
      expect(leader.running).toBe(false);
      const newLeader = await pollUntil(
        'the two other nodes elect a new ORDERS leader',
        async () => (await cluster.streamLeader('ORDERS').catch(() => undefined))?.name,
        (name) => name !== undefined && name !== leader.name,
        30_000,
      );
      const electedAfterMs = Date.now() - killedAt;
      await cluster.restart(leader);
      restartedAt = Date.now();
      const ackedBeforeRestart = counts.acked;
      expect(leader.pid).not.toBe(pid);

      const shardRun = await feeding;
      const fedMs = Date.now() - started;
      expect(ackedBeforeKill).toBeLessThan(total);
      expect(ackedBeforeRestart).toBeLessThan(total);
      expect(newLeader).not.toBe(leader.name);
      expect(unpublishable).toEqual([]);
      // The kill cost publishes, and Lambda's retries from the earliest failure recovered them.
      expect(counts.publishFailures).toBeGreaterThan(0);
      expect(shardRun.partlyFailed).toBeGreaterThan(0);
      // The restarted node catches up: all three hold the stream again, every replica current.
      const info = await cluster.waitForStreamReplicas('ORDERS', 60_000);
      expect(
        [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((replica) => replica.name)].sort(),
      ).toEqual(cluster.nodes.map((node) => node.name).sort());

      // A new bridge instance (the old one crashed after its PubAcks, say) is handed the first batch
      // again: across the change of leader the stream still knows those ids, within its
      // duplicate window, and stores none of them twice.
      const { state, config } = await cluster.streamInfo('ORDERS');
      const before = state.messages;
      expect(Date.now() - started).toBeLessThan(millis(config.duplicate_window));
      const again = eventBridge({
        connect: async () => {
          const publisher = await connectEventPublisher(cluster.access('bridge'), { timeoutMs: 2_000 });
          publishers.push(publisher);
          return publisher;
        },
        onError: (error) => bridgeErrors.push(error),
        onUnpublishable: (error) => unpublishable.push(error),
      });
      expect(await again.handle({ Records: shard.slice(0, BATCH_SIZE) })).toEqual({ batchItemFailures: [] });
      await again.close();
      expect((await cluster.streamInfo('ORDERS')).state.messages).toBe(before);

      const published = new Map(orders.flat().map((event) => [event.id, event]));
      const stored = (await readStream(cluster.access('consumer'), 'ORDERS'))
        .map((message) => ({ msgId: message.msgId, event: parseEvent(JSON.parse(message.body)) }))
        .filter(({ event }) => event.subject.startsWith(`order-${run}-`));
      // Exactly once: every id once, no id that was not published; retries were deduplicated.
      const storedIds = stored.map(({ msgId }) => msgId);
      const lost = [...published.keys()].filter((id) => !storedIds.includes(id));
      const twice = storedIds.filter((id, index) => storedIds.indexOf(id) !== index);
      const why = new Map<string, number>();
      for (const error of bridgeErrors) {
        const text = error instanceof Error ? error.message : String(error);
        why.set(text, (why.get(text) ?? 0) + 1);
      }
      console.info(
        `nats-cluster: ${total} events of ${ORDERS} orders through the bridge in ${shardRun.invocations} ` +
          `invocations (largest batch ${shardRun.largestBatch}) in ${fedMs} ms, ORDERS leader killed after ` +
          `${ackedBeforeKill} PubAcks, a new one found ${electedAfterMs} ms later; ${counts.publishFailures} publishes failed, ` +
          `${shardRun.partlyFailed} responses reported failures, ${shardRun.refed} records re-fed, ` +
          `${reconnects.length} reconnects, ${counts.duplicates} PubAcks were duplicates; ` +
          `failures: ${[...why].map(([text, n]) => `${n}× ${text}`).join(', ') || 'none'}; ` +
          `stored ${stored.length}: ${lost.length} lost, ${twice.length} twice`,
      );
      expect(lost).toEqual([]);
      expect(twice).toEqual([]);
      expect(stored).toHaveLength(total);
      expect(stored.every(({ msgId, event }) => msgId === event.id && published.has(event.id))).toBe(true);
      // In order per order: the stream holds each order's events as 1, 2, 3, 4, 5.
      const sequences = new Map<string, string[]>();
      for (const { event } of stored)
        sequences.set(event.subject, [...(sequences.get(event.subject) ?? []), event.sequence]);
      expect(sequences.size).toBe(ORDERS);
      for (const [, seen] of sequences)
        expect(seen).toEqual(
          Array.from({ length: EVENTS_PER_ORDER }, (_, index) => formatSequence(index + 1)),
        );
    } finally {
      stopped = true;
      await bridge.close();
      await Promise.allSettled(publishers.map((publisher) => publisher.close()));
    }
  }, 60_000);

  it.skipIf(!supportsSyncInterval())(
    'fsyncs every write before acknowledging it (sync_interval: always)',
    async () => {
      for (const node of cluster.nodes) {
        const varz = (await (await fetch(`${node.monitorUrl}/varz`)).json()) as {
          jetstream?: { config?: { sync_always?: boolean } };
        };
        expect(varz.jetstream?.config?.sync_always, node.name).toBe(true);
      }
    },
  );
});

/** What a client that speaks plain NATS (no TLS) gets: the INFO line, then whatever follows, until the server hangs up. */
async function plaintextClient(port: number) {
  return new Promise<{ info: { tls_required?: boolean }; after: string; closed: boolean }>(
    (resolve, reject) => {
      const socket = connectTcp({ host: '127.0.0.1', port });
      let received = '';
      let info: { tls_required?: boolean } | undefined;
      const timer = setTimeout(() => finish(false), 10_000);
      const finish = (closed: boolean) => {
        clearTimeout(timer);
        socket.destroy();
        if (!info) reject(new Error(`no INFO from the server; got ${JSON.stringify(received)}`));
        else resolve({ info, after: received, closed });
      };
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
        const line = /^INFO (\{.*\})\s*\r\n/.exec(received);
        if (!info && line) {
          info = JSON.parse(line[1]!) as { tls_required?: boolean };
          received = received.slice(line[0].length);
          socket.write(
            'CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"lang":"raw","version":"0"}\r\nPING\r\n',
          );
        }
      });
      socket.on('error', () => {});
      socket.on('close', () => finish(true));
    },
  );
}

/** A TLS handshake with a route port, as a node joining the cluster makes it; resolves with what the node answers. */
async function openRoute(port: number, clientCertificate?: { cert: string; key: string }) {
  const { connect: connectTls } = await import('node:tls');
  return new Promise<{ answer: string; error?: string }>((resolve) => {
    let answer = '';
    const socket = connectTls({ host: '127.0.0.1', port, ca: cluster.caPem, ...clientCertificate });
    const timer = setTimeout(() => done(), 10_000);
    const done = (error?: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ answer, ...(error ? { error } : {}) });
    };
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString();
      if (answer.includes('\r\n')) done();
    });
    socket.on('error', (error) => done(error.message));
    socket.on('close', () => done());
  });
}

describe('who gets in', () => {
  it('lets in a client with an NKEY user and the pinned CA, and refuses one without credentials, without TLS, or trusting another CA', async () => {
    const bridge = cluster.access('bridge');
    const allowed = await connectAs(bridge);
    expect(allowed.getServer()).toMatch(/^127\.0\.0\.1:\d+$/);
    await allowed.flush();

    const refusal = (access: NatsAccess) =>
      connect({ ...connectionOptions(access), timeout: 5_000, maxReconnectAttempts: 0 }).then(
        async (connection) => {
          await connection.close();
          return 'connected';
        },
        (error: unknown) => (error instanceof Error ? error.message : String(error)),
      );

    // Right TLS, no credentials.
    expect(await refusal({ servers: cluster.servers, tlsCa: cluster.caPem })).toMatch(
      /authorization violation/i,
    );
    // Right credentials, but the server's certificate checked against the system's CAs only.
    expect(await refusal({ ...bridge, tlsCa: undefined })).toMatch(/certificate/i);
    // Right credentials, pinned to a CA that did not sign the servers' certificate.
    const elsewhere = await mkdtemp(join(tmpdir(), 'order-saga-other-ca-'));
    try {
      const other = makeCertificates(elsewhere);
      expect(await refusal({ ...bridge, tlsCa: await readFile(other.ca, 'utf8') })).toMatch(/certificate/i);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
    // Plain NATS on the client port: the server requires TLS and hangs up without a PONG.
    const port = Number(new URL(cluster.servers[0]!).port);
    const plain = await plaintextClient(port);
    expect(plain.info.tls_required).toBe(true);
    expect(plain.after).not.toContain('PONG');
    expect(plain.closed).toBe(true);
  });

  it('lets only nodes with a certificate from the cluster CA open a route', async () => {
    const node = cluster.nodes[0]!;
    const own = await openRoute(node.routePort, {
      cert: await readFile(join(cluster.dir, '.nats/certs/server.pem'), 'utf8'),
      key: await readFile(join(cluster.dir, '.nats/certs/server-key.pem'), 'utf8'),
    });
    expect(own.answer).toMatch(/^INFO /);

    const none = await openRoute(node.routePort);
    expect(none.answer).not.toMatch(/INFO/);
    expect(none.error).toMatch(/certificate/i);

    const elsewhere = await mkdtemp(join(tmpdir(), 'order-saga-other-ca-'));
    try {
      const other = makeCertificates(elsewhere);
      const foreign = await openRoute(node.routePort, {
        cert: await readFile(other.cert, 'utf8'),
        key: await readFile(other.key, 'utf8'),
      });
      expect(foreign.answer).not.toMatch(/INFO/);
      expect(foreign.error).toMatch(/certificate/i);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});

describe('what each user may do', () => {
  it('refuses the bridge anything but publishing events: other subjects, purging or deleting a stream', async () => {
    const publisher = await connectEventPublisher(cluster.access('bridge'), { timeoutMs: 5_000 });
    try {
      const message = messageOf(orderEvents(`order-${randomUUID()}`)[0]!);
      expect(await publisher.publish(message)).toMatchObject({ stream: 'ORDERS', duplicate: false });
      const before = (await cluster.streamInfo('ORDERS')).state.messages;

      await expect(publisher.publish({ subject: 'audit.x', id: randomUUID(), body: '{}' })).rejects.toThrow(
        /permissions violation for publish to "audit\.x"/i,
      );

      const bridge = await connectAs(cluster.access('bridge'));
      for (const api of ['$JS.API.STREAM.PURGE.ORDERS', '$JS.API.STREAM.DELETE.ORDERS']) {
        const refused = await permissionViolation(bridge.request(api, '', { timeout: 5_000 }));
        expect(refused, api).toMatchObject({ operation: 'publish', subject: api });
      }
      // Nor can it manage streams through the JetStream API at all.
      await expect(jetstreamManager(bridge)).rejects.toThrow(/permissions violation/i);

      // ORDERS is untouched, and the bridge's connection still publishes.
      const after = await cluster.streamInfo('ORDERS');
      expect(after.state.messages).toBe(before);
      expect(after.config.subjects).toEqual(['order.*']);
      const next = messageOf(orderEvents(`order-${randomUUID()}`)[0]!);
      expect(await publisher.publish(next)).toMatchObject({ stream: 'ORDERS', duplicate: false });
    } finally {
      await publisher.close();
    }
  });

  it('lets a service (the service user) take, ack and nak what its durable push consumer delivers, in its queue group, through startConsumer', async () => {
    // A downstream service's consumer, as npm run nats:setup makes them (infra/nats/consumers.ts),
    // delivering from now on so that the test sees only its own events.
    const admin = await jetstreamManager(await connectAs(cluster.access('admin')));
    const durable = {
      stream: 'ORDERS',
      name: 'test-service-orders',
      handles: ['order.created', 'order.completed'],
      maxDeliver: 5,
    } as const;
    await admin.consumers.add(durable.stream, {
      durable_name: durable.name,
      deliver_subject: 'deliver.test-service.orders',
      deliver_group: 'test-service',
      filter_subject: 'order.*',
      deliver_policy: DeliverPolicy.New,
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: 1,
      max_deliver: durable.maxDeliver,
    });
    // Two instances of the service, as examples/consumer.ts runs them, sharing one tracker.
    const tracker = new SequenceTracker();
    const outcomes: Array<{ instance: number; outcome: MessageOutcome }> = [];
    const serverErrors: string[] = [];
    let failedOnce = false;
    const instances: RunningConsumer[] = [];
    for (const instance of [1, 2]) {
      const connection = await connectAs(cluster.access('service'));
      void (async () => {
        for await (const status of connection.status())
          if (status.type === 'error') serverErrors.push(String(status.error));
      })();
      instances.push(
        await startConsumer({
          connection,
          consumer: durable,
          tracker,
          handle: (event) => {
            // The first delivery of order.completed fails: nak'ed, delivered again a second later.
            if (event.type === 'order.completed' && !failedOnce) {
              failedOnce = true;
              throw new Error('the warehouse is down');
            }
          },
          report: (outcome) => outcomes.push({ instance, outcome }),
        }),
      );
    }
    try {
      const orderId = `order-${randomUUID()}`;
      const events = orderEvents(orderId);
      const publisher = await connectEventPublisher(cluster.access('bridge'), { timeoutMs: 5_000 });
      try {
        // (No undecodable message: startConsumer terminates it with a reason, "+TERM <reason>",
        // which nats-server 2.9 ignores; it would stay pending until ack wait.)
        for (const event of events) await publisher.publish(messageOf(event));
      } finally {
        await publisher.close();
      }
      const lastSeq = (await cluster.streamInfo('ORDERS')).state.last_seq;
      const info = await pollUntil(
        'the service acknowledges every message',
        async () => admin.consumers.info(durable.stream, durable.name),
        (current) => current.ack_floor.stream_seq === lastSeq && current.num_ack_pending === 0,
        20_000,
      );
      expect(info.num_pending).toBe(0);
      const kinds = outcomes.map(({ outcome }) =>
        'event' in outcome ? `${outcome.kind} ${outcome.event.type}` : outcome.kind,
      );
      // Every message to one instance of the group: no duplicates, the failed one once more.
      expect(kinds).toEqual([
        'handled order.created',
        'ignored order.status_changed',
        'ignored order.status_changed',
        'ignored order.status_changed',
        'failed order.completed',
        'handled order.completed',
      ]);
      console.info(
        `nats-cluster: service instances took ${outcomes.map(({ instance }) => instance).join(', ')}`,
      );
      expect(serverErrors).toEqual([]);
    } finally {
      await Promise.allSettled(instances.map((instance) => instance.stop()));
      await admin.consumers.delete(durable.stream, durable.name).catch(() => false);
    }
  });

  it('refuses the service user creating a consumer (one delivering onto payment.succeeded), deleting one, and publishing events', async () => {
    const admin = await jetstreamManager(await connectAs(cluster.access('admin')));
    const { name } = await admin.consumers.add('ORDERS', {
      durable_name: 'test-service-kept',
      deliver_subject: 'deliver.test-service-kept.orders',
      deliver_group: 'test-service-kept',
      filter_subject: 'order.*',
      deliver_policy: DeliverPolicy.New,
      ack_policy: AckPolicy.Explicit,
    });
    const counts = async () => ({
      orders: (await cluster.streamInfo('ORDERS')).state.messages,
      payments: (await cluster.streamInfo('PAYMENTS')).state.messages,
    });
    const before = await counts();
    const consumersBefore = await consumerNames();
    const service = await connectAs(cluster.access('service'));
    // nats-server does not check a push consumer's deliver_subject against its creator's rights
    // (nats-io/nats-server#8274): with a create, the stream's messages would land on payment.succeeded.
    const forged = JSON.stringify({
      stream_name: 'ORDERS',
      config: {
        name: 'forged',
        deliver_subject: 'payment.succeeded',
        filter_subject: 'order.*',
        deliver_policy: 'all',
        ack_policy: 'none',
      },
    });
    const event = messageOf(orderEvents(`order-${randomUUID()}`)[0]!);
    for (const [subject, body] of [
      ['$JS.API.CONSUMER.CREATE.ORDERS.forged', forged],
      ['$JS.API.CONSUMER.CREATE.ORDERS.forged.order.*', forged],
      ['$JS.API.CONSUMER.CREATE.ORDERS', forged],
      ['$JS.API.CONSUMER.DURABLE.CREATE.ORDERS.forged', forged],
      [`$JS.API.CONSUMER.DELETE.ORDERS.${name}`, ''],
      ['$JS.API.STREAM.PURGE.ORDERS', ''],
      [event.subject, event.body],
      // Nor can it forge a delivery to another service.
      ['deliver.test-service-kept.orders', event.body],
    ] as const) {
      const refused = await permissionViolation(service.request(subject, body, { timeout: 5_000 }));
      expect(refused, subject).toMatchObject({ operation: 'publish', subject });
    }
    expect(await counts()).toEqual(before);
    expect(await consumerNames()).toEqual(consumersBefore);
    expect((await admin.consumers.info('ORDERS', name)).config.deliver_subject).toBe(
      'deliver.test-service-kept.orders',
    );
    await admin.consumers.delete('ORDERS', name);
  });

  it('lets the tail/inspection user (consumer) read a stream, but not publish events nor purge', async () => {
    const consumer = await connectAs(cluster.access('consumer'));
    const stored = await readStream(cluster.access('consumer'), 'ORDERS');
    expect(stored.length).toBe((await cluster.streamInfo('ORDERS')).state.messages);

    const message = messageOf(orderEvents(`order-${randomUUID()}`)[0]!);
    expect(
      await permissionViolation(consumer.request(message.subject, message.body, { timeout: 5_000 })),
    ).toMatchObject({ operation: 'publish', subject: message.subject });
    expect(
      await permissionViolation(consumer.request('$JS.API.STREAM.PURGE.ORDERS', '', { timeout: 5_000 })),
    ).toMatchObject({ operation: 'publish', subject: '$JS.API.STREAM.PURGE.ORDERS' });
    expect((await cluster.streamInfo('ORDERS')).state.messages).toBe(stored.length);
  });

  it('lets replay (npm run events:replay) read which ids the streams hold and publish the rest, but not purge, delete or change a stream', async () => {
    const endpoint = inject('dynamodbEndpoint');
    const raw = new DynamoDBClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const prefix = `e2e-replay-${randomUUID().slice(0, 8)}`;
    const tables = {
      orders: `${prefix}-orders`,
      inventory: `${prefix}-inventory`,
      payments: `${prefix}-payments`,
    };
    try {
      // The outbox as the services' tables hold it: pk/sk, the items as shared/outbox/write.ts puts them.
      await Promise.all(
        Object.values(tables).map((TableName) =>
          raw.send(
            new CreateTableCommand({
              TableName,
              BillingMode: 'PAY_PER_REQUEST',
              AttributeDefinitions: [
                { AttributeName: 'pk', AttributeType: 'S' },
                { AttributeName: 'sk', AttributeType: 'S' },
              ],
              KeySchema: [
                { AttributeName: 'pk', KeyType: 'HASH' },
                { AttributeName: 'sk', KeyType: 'RANGE' },
              ],
            }),
          ),
        ),
      );
      const orderId = `order-${randomUUID()}`;
      const orderOutbox = orderEvents(orderId);
      const paymentOutbox = sequenceEvents(
        [
          createEvent('payment.initiated', {
            source: PAYMENT_SOURCE,
            subject: orderId,
            data: {
              orderId,
              paymentIntentId: `pi_${orderId}`,
              amount: 2500,
              currency: 'eur',
              status: 'requires_payment_method',
            },
          }),
        ],
        0,
      );
      await DynamoDBDocumentClient.from(raw).send(
        new TransactWriteCommand({
          TransactItems: [
            ...outboxPuts(tables.orders, `ORDER#${orderId}`, orderOutbox),
            ...outboxPuts(tables.payments, `PAYMENT#${orderId}`, paymentOutbox),
          ],
        }),
      );
      // The bridge got the order's first two events out, then nothing more.
      const bridge = await connectEventPublisher(cluster.access('bridge'), { timeoutMs: 5_000 });
      try {
        for (const event of orderOutbox.slice(0, 2)) await bridge.publish(messageOf(event));
      } finally {
        await bridge.close();
      }
      const counts = async () => ({
        orders: (await cluster.streamInfo('ORDERS')).state.messages,
        payments: (await cluster.streamInfo('PAYMENTS')).state.messages,
      });
      const before = await counts();
      const consumersBefore = await consumerNames();

      // As docs/nats.md says to run it against the cluster, with the tables from the environment.
      const replay = await runScript('infra/nats/replay.ts', ['--order', orderId], {
        ORDERS_TABLE_NAME: tables.orders,
        INVENTORY_TABLE_NAME: tables.inventory,
        PAYMENTS_TABLE_NAME: tables.payments,
        AWS_ENDPOINT_URL_DYNAMODB: endpoint,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: 'local',
        AWS_SECRET_ACCESS_KEY: 'local',
        ...clusterEnv('replay'),
      });
      expect(replay, replay.stderr).toMatchObject({ code: 0 });
      expect(replay.stderr).not.toMatch(/permission/i);
      expect(replay.stdout).toContain(
        'replay: 6 events found (1 order), 2 already on the streams, 4 published',
      );
      expect(await counts()).toEqual({ orders: before.orders + 3, payments: before.payments + 1 });
      const ofOrder = async (stream: string) =>
        (await readStream(cluster.access('consumer'), stream))
          .filter((message) => parseEvent(JSON.parse(message.body)).subject === orderId)
          .map((message) => message.msgId);
      expect(await ofOrder('ORDERS')).toEqual(orderOutbox.map((event) => event.id));
      expect(await ofOrder('PAYMENTS')).toEqual(paymentOutbox.map((event) => event.id));
      // It deleted the ordered consumers it read the streams with.
      expect(await consumerNames()).toEqual(consumersBefore);

      const replayUser = await connectAs(cluster.access('replay'));
      for (const api of [
        '$JS.API.STREAM.PURGE.ORDERS',
        '$JS.API.STREAM.DELETE.ORDERS',
        '$JS.API.STREAM.MSG.DELETE.ORDERS',
        '$JS.API.STREAM.UPDATE.ORDERS',
        '$JS.API.STREAM.CREATE.AUDIT',
        '$JS.API.STREAM.MSG.GET.ORDERS',
        'audit.x',
      ]) {
        const refused = await permissionViolation(replayUser.request(api, '{}', { timeout: 5_000 }));
        expect(refused, api).toMatchObject({ operation: 'publish', subject: api });
      }
      expect(await counts()).toEqual({ orders: before.orders + 3, payments: before.payments + 1 });
    } finally {
      await Promise.allSettled(
        Object.values(tables).map((TableName) => raw.send(new DeleteTableCommand({ TableName }))),
      );
      raw.destroy();
    }
  });

  it("refuses consumer, replay and service the services' durable consumers: they can neither create over one, nor change or delete it", async () => {
    // Every consumer npm run nats:setup makes: accounts.conf must deny exactly these names.
    const definitions = consumerDefinitions();
    await ensureConsumers(cluster.access('admin'), definitions);
    for (const role of ['consumer', 'replay', 'service'] as const) {
      const connection = await connectAs(cluster.access(role));
      for (const definition of definitions) {
        const { stream, name, filterSubject } = definition;
        // On nats-server 2.9 this would silently point the service's messages elsewhere.
        const takeover = JSON.stringify({
          stream_name: stream,
          config: {
            name,
            durable_name: name,
            deliver_subject: `deliver.${role}.stolen`,
            filter_subject: filterSubject,
            deliver_policy: 'all',
            ack_policy: 'explicit',
          },
        });
        for (const [api, body] of [
          [`$JS.API.CONSUMER.CREATE.${stream}.${name}`, takeover],
          [`$JS.API.CONSUMER.CREATE.${stream}.${name}.${filterSubject}`, takeover],
          [`$JS.API.CONSUMER.DURABLE.CREATE.${stream}.${name}`, takeover],
          // The nameless create, whose body can name a durable: nobody but admin has it.
          [`$JS.API.CONSUMER.CREATE.${stream}`, takeover],
          [`$JS.API.CONSUMER.DELETE.${stream}.${name}`, ''],
        ] as const) {
          const refused = await permissionViolation(connection.request(api, body, { timeout: 5_000 }));
          expect(refused, `${role}: ${api}`).toMatchObject({ operation: 'publish', subject: api });
        }
      }
    }
    const admin = await jetstreamManager(await connectAs(cluster.access('admin')));
    for (const definition of definitions)
      expect((await admin.consumers.info(definition.stream, definition.name)).config.deliver_subject).toBe(
        definition.deliverSubject,
      );
  });

  it('lets the consumer run npm run events:tail: an ordered consumer per stream, the history, and deleting them on Ctrl-C', async () => {
    const orderId = `order-${randomUUID()}`;
    const events = orderEvents(orderId);
    const publisher = await connectEventPublisher(cluster.access('bridge'), { timeoutMs: 5_000 });
    try {
      for (const event of events) await publisher.publish(messageOf(event));
    } finally {
      await publisher.close();
    }
    const before = await consumerNames();
    const child = spawn(process.execPath, ['infra/nats/tail.ts', '--all', '--order', orderId], {
      cwd: ROOT,
      env: { ...process.env, ...clusterEnv('consumer') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const lines = () => stdout.split('\n').filter((line) => line.includes(orderId));
    try {
      await pollUntil(
        `the tail prints the order's history (stderr: ${stderr})`,
        async () => lines().length,
        (n) => n >= events.length,
        30_000,
      );
      // While it follows, each stream has its ordered consumer.
      const during = await consumerNames();
      for (const stream of Object.keys(STREAMS) as StreamName[])
        expect(during[stream].length, stream).toBe(before[stream].length + 1);
      child.kill('SIGINT');
      expect(await exited, stderr).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    expect(stderr).toMatch(/^events:tail: following /m);
    expect(stderr).not.toMatch(/permission/i);
    expect(lines().map((line) => /#(\d+)/.exec(line)?.[1])).toEqual(['1', '2', '3', '4', '5']);
    // Ctrl-C deleted them: nothing waits out an inactivity threshold.
    expect(await consumerNames()).toEqual(before);
  });
});
