import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, PutCommand, TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createEvent, type CloudEvent, type NewEvent } from '../../events/envelope.ts';
import { STREAMS, type StreamName } from '../../events/subjects.ts';
import { connectEventPublisher, ensureStreams, type EventPublisher } from '../../shared/nats.ts';
import { OUTBOX_RETENTION_SECONDS, outboxPuts, sequenceEvents } from '../../shared/outbox/write.ts';
import { freePort, startNatsServer, type LocalService } from '../local/processes.ts';
import { createTables, tableName, templateTables } from '../local/tables.ts';
import { synthesizeTemplate } from '../local/template.ts';
import {
  parseReplayArgs,
  replayOrder,
  resolveReplayTarget,
  ReplayUsageError,
  runReplay,
  type ReplayCandidate,
} from './replay-events.ts';
import { streamDefinitions } from './streams.ts';

/*
 * The replay against DynamoDB Local (the suite's) with the stack's three tables, and a nats-server of
 * this file's own holding the contract's streams.
 */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SOURCES = {
  orders: 'order-saga/orders',
  inventory: 'order-saga/inventory',
  payments: 'order-saga/payments',
};
const HOUR_MS = 3_600_000;

let nats: LocalService;
let raw: DynamoDBClient;
let doc: DynamoDBDocumentClient;
let publisher: EventPublisher;
let tables: { orders: string; inventory: string; payments: string };
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  const endpoint = inject('dynamodbEndpoint');
  // The SDK's credential chain reads the process's environment.
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'local');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'local');
  raw = new DynamoDBClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  doc = DynamoDBDocumentClient.from(raw);
  const prefix = `it-replay-${randomUUID().slice(0, 6)}-`;
  const [template, server] = await Promise.all([synthesizeTemplate({}), startNatsServer()]);
  nats = server;
  const stackTables = templateTables(template);
  const service = (name: string) => {
    const found = stackTables.filter((table) => table.logicalId.startsWith(name));
    if (found.length !== 1) throw new Error(`expected one ${name} table, found ${found.length}`);
    return found[0]!;
  };
  const [orders, inventory, payments] = [service('Orders'), service('Inventory'), service('Payments')];
  await Promise.all([
    createTables(raw, [orders, inventory, payments], prefix),
    ensureStreams(nats.url, streamDefinitions(1)),
  ]);
  tables = {
    orders: tableName(orders.logicalId, prefix),
    inventory: tableName(inventory.logicalId, prefix),
    payments: tableName(payments.logicalId, prefix),
  };
  publisher = await connectEventPublisher(nats.url);
  env = {
    ...process.env,
    ORDERS_TABLE_NAME: tables.orders,
    INVENTORY_TABLE_NAME: tables.inventory,
    PAYMENTS_TABLE_NAME: tables.payments,
    AWS_ENDPOINT_URL_DYNAMODB: endpoint,
    AWS_REGION: 'us-east-1',
    NATS_URL: nats.url,
  };
});

afterAll(async () => {
  await publisher?.close();
  await nats?.stop();
  raw?.destroy();
  vi.unstubAllEnvs();
});

/** Commits events to an aggregate's outbox as its repository does: sequenced after `last`, in one transaction. */
async function commit(table: string, pk: string, events: NewEvent[], last = 0): Promise<CloudEvent[]> {
  const sequenced = sequenceEvents(events, last);
  await doc.send(new TransactWriteCommand({ TransactItems: outboxPuts(table, pk, sequenced) }));
  return sequenced;
}

/** What the bridge does with a committed event. */
const bridgePublish = (event: CloudEvent) =>
  publisher.publish({ subject: event.type, id: event.id, body: JSON.stringify(event) });

interface RawMessage {
  stream: StreamName;
  seq: number;
  msgId: string | undefined;
  body: string;
  orderId: string;
  sequence: string | undefined;
}

/** Every message the streams store, undecoded: a body of an older schema must come out as it went in. */
async function streamMessages(): Promise<RawMessage[]> {
  const connection = await connect({ servers: nats.url });
  try {
    const jsm = await jetstreamManager(connection);
    const messages: RawMessage[] = [];
    for (const stream of Object.keys(STREAMS) as StreamName[]) {
      const { state } = await jsm.streams.info(stream);
      for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq; seq++) {
        const message = await jsm.streams.getMessage(stream, { seq });
        if (!message) continue;
        const body = message.string();
        const json = JSON.parse(body) as { subject: string; sequence?: string };
        messages.push({
          stream,
          seq,
          msgId: message.header?.get('Nats-Msg-Id'),
          body,
          orderId: json.subject,
          sequence: json.sequence,
        });
      }
    }
    return messages;
  } finally {
    await connection.close();
  }
}

async function replay(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runReplay(argv, env, { out: (line) => out.push(line), err: (line) => err.push(line) });
  return { code, out, err };
}

const at = (base: number, seconds: number) => new Date(base + seconds * 1000);
const state = (
  orderId: string,
  status: 'PENDING' | 'PAYMENT_PENDING' | 'COMPLETED',
  sagaState: 'STARTED' | 'PAYMENT_PENDING' | 'COMPLETED',
) => ({ orderId, status, sagaState }) as const;

function orderStory(orderId: string, base: number) {
  const money = { orderId, paymentIntentId: `pi_${orderId}`, amount: 1250, currency: 'eur' };
  return {
    created: createEvent('order.created', {
      source: SOURCES.orders,
      subject: orderId,
      data: {
        ...state(orderId, 'PENDING', 'STARTED'),
        customerId: 'c-1',
        items: [{ sku: 'SKU-1', quantity: 2 }],
        currency: 'eur',
      },
      time: at(base, 0),
    }),
    reserved: createEvent('inventory.reserved', {
      source: SOURCES.inventory,
      subject: orderId,
      data: {
        orderId,
        reservationId: `r-${orderId}`,
        items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 625 }],
        amount: 1250,
        currency: 'eur',
        expiresAt: at(base, 900).toISOString(),
      },
      time: at(base, 1),
    }),
    initiated: createEvent('payment.initiated', {
      source: SOURCES.payments,
      subject: orderId,
      data: { ...money, status: 'requires_payment_method' },
      time: at(base, 2),
    }),
    toPaymentPending: createEvent('order.status_changed', {
      source: SOURCES.orders,
      subject: orderId,
      data: {
        ...state(orderId, 'PAYMENT_PENDING', 'PAYMENT_PENDING'),
        previousStatus: 'PENDING',
        previousSagaState: 'STARTED',
      },
      time: at(base, 3),
    }),
    succeeded: createEvent('payment.succeeded', {
      source: SOURCES.payments,
      subject: orderId,
      data: money,
      time: at(base, 5),
    }),
    toCompleted: createEvent('order.status_changed', {
      source: SOURCES.orders,
      subject: orderId,
      data: {
        ...state(orderId, 'COMPLETED', 'COMPLETED'),
        previousStatus: 'PAYMENT_PENDING',
        previousSagaState: 'PAYMENT_PENDING',
      },
      time: at(base, 6),
    }),
    completed: createEvent('order.completed', {
      source: SOURCES.orders,
      subject: orderId,
      data: {
        ...state(orderId, 'COMPLETED', 'COMPLETED'),
        amount: 1250,
        currency: 'eur',
        paymentIntentId: money.paymentIntentId,
      },
      time: at(base, 6),
    }),
  };
}

/** Writes one order's whole story across the three tables; returns its committed events by table. */
async function writeOrder(orderId: string, base: number) {
  const story = orderStory(orderId, base);
  const orders = [
    ...(await commit(tables.orders, `ORDER#${orderId}`, [story.created])),
    ...(await commit(tables.orders, `ORDER#${orderId}`, [story.toPaymentPending], 1)),
    // Two events of one transaction: consecutive sequences, status_changed first.
    ...(await commit(tables.orders, `ORDER#${orderId}`, [story.toCompleted, story.completed], 2)),
  ];
  const inventory = await commit(tables.inventory, `RESERVATION#${orderId}`, [story.reserved]);
  const payments = [
    ...(await commit(tables.payments, `PAYMENT#${orderId}`, [story.initiated])),
    ...(await commit(tables.payments, `PAYMENT#${orderId}`, [story.succeeded], 1)),
  ];
  return { orders, inventory, payments, all: [...orders, ...inventory, ...payments] };
}

describe('npm run events:replay -- --order ID', () => {
  it('replaying records stores no duplicate: each event once, in sequence order, with its id and body', async () => {
    const [a, b] = [`o-${randomUUID()}`, `o-${randomUUID()}`];
    const base = Date.now() - 5 * HOUR_MS;
    const orderA = await writeOrder(a, base);
    const orderB = await writeOrder(b, base + 60_000);
    // The bridge got the first events of each aggregate out; the rest never reached the streams.
    for (const event of [orderA.orders[0]!, ...orderA.inventory, orderA.payments[0]!, orderB.orders[0]!])
      await bridgePublish(event);

    const first = await replay('--order', a);
    expect(first.err.filter((line) => !line.startsWith('events:replay: outbox of'))).toEqual([]);
    expect(first.code).toBe(0);
    expect(first.out.at(-1)).toBe('replay: 7 events found (1 order), 3 already on the streams, 4 published');
    expect(first.out).toContain(
      `published ORDER#${a}: order.status_changed #2, order.status_changed #3, order.completed #4`,
    );

    const stored = await streamMessages();
    const ofA = stored.filter((message) => message.orderId === a);
    // Exactly once each, with the original id and the committed text byte for byte.
    expect(ofA.map((message) => message.msgId).sort()).toEqual(orderA.all.map((event) => event.id).sort());
    for (const event of orderA.all) {
      const message = ofA.find((candidate) => candidate.msgId === event.id)!;
      expect(message.body).toBe(JSON.stringify(event));
      expect(message.stream).toBe(
        { order: 'ORDERS', inventory: 'INVENTORY', payment: 'PAYMENTS' }[event.type.split('.')[0]!],
      );
    }
    // Per (source, order), stream order is sequence order.
    for (const stream of ['ORDERS', 'PAYMENTS', 'INVENTORY'] as const) {
      const sequences = ofA.filter((m) => m.stream === stream).map((m) => m.sequence);
      expect(sequences).toEqual([...sequences].sort());
    }
    expect(ofA.filter((m) => m.stream === 'ORDERS').map((m) => m.sequence)).toEqual([
      '000000000001',
      '000000000002',
      '000000000003',
      '000000000004',
    ]);
    // The other order was not touched.
    expect(stored.filter((message) => message.orderId === b).map((m) => m.msgId)).toEqual([
      orderB.orders[0]!.id,
    ]);

    // Again: everything is already there, nothing is published (not even as a JetStream duplicate).
    const again = await replay('--order', a);
    expect(again.code).toBe(0);
    expect(again.out).toEqual(['replay: 7 events found (1 order), 7 already on the streams, 0 published']);
    expect((await streamMessages()).length).toBe(stored.length);
  });
});

describe('npm run events:replay -- --since TIME', () => {
  it('replays the events at or after the time, of every order, and lists them first on a dry run', async () => {
    const c = `o-${randomUUID()}`;
    const base = Date.now() - 4 * HOUR_MS;
    const orderC = await writeOrder(c, base);
    // Since the order's payment.initiated (base + 2 s): it, order.status_changed #2, payment.succeeded
    // and the two events of the last transaction.
    const since = at(base, 2).toISOString();
    const picked = orderC.all.filter((event) => Date.parse(event.time) >= Date.parse(since));
    expect(picked).toHaveLength(5);
    const before = (await streamMessages()).length;

    const dry = await replay('--since', since, '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.out.at(-1)).toBe(
      'replay: 5 events found (1 order), 0 already on the streams, 5 to publish (dry run: nothing published)',
    );
    expect(dry.out.filter((line) => line.startsWith('would publish'))).toEqual([
      // Aggregates by their first event's time, each by sequence.
      expect.stringContaining(`PAYMENT#${c} payment.initiated #1 id ${orderC.payments[0]!.id}`),
      expect.stringContaining(`PAYMENT#${c} payment.succeeded #2`),
      expect.stringContaining(`ORDER#${c} order.status_changed #2`),
      expect.stringContaining(`ORDER#${c} order.status_changed #3`),
      expect.stringContaining(`ORDER#${c} order.completed #4`),
    ]);
    expect((await streamMessages()).length).toBe(before);

    const real = await replay('--since', since);
    expect(real.code).toBe(0);
    expect(real.out.at(-1)).toBe('replay: 5 events found (1 order), 0 already on the streams, 5 published');
    const ofC = (await streamMessages()).filter((message) => message.orderId === c);
    expect(ofC.map((message) => message.msgId).sort()).toEqual(picked.map((event) => event.id).sort());
  });
});

describe('a record of an older schema', () => {
  it('is replayed byte for byte, before the sequenced events of its aggregate; one older than the stream is said so', async () => {
    const d = `o-${randomUUID()}`;
    const legacyTime = new Date(Date.now() - 2 * 24 * HOUR_MS); // outbox keeps 7 days, the stream 24 h
    const legacyId = randomUUID();
    // Written before sequences existed, with data today's schema refuses, in its own spacing.
    const legacyBody = `{"specversion":"1.0","id":"${legacyId}","source":"order-saga/orders","type":"order.created","time":"${legacyTime.toISOString()}","subject":"${d}","datacontenttype":"application/json","data":{"orderId":"${d}","state":"NEW","customer":{"id":"c-1"}} }`;
    await doc.send(
      new PutCommand({
        TableName: tables.orders,
        Item: {
          pk: `ORDER#${d}`,
          sk: `EVENT#${legacyTime.toISOString()}#${legacyId}`,
          kind: 'event',
          eventId: legacyId,
          eventType: 'order.created',
          event: legacyBody,
          expiresAt: Math.floor(legacyTime.getTime() / 1000) + OUTBOX_RETENTION_SECONDS,
        },
      }),
    );
    const [next] = await commit(tables.orders, `ORDER#${d}`, [
      createEvent('order.status_changed', {
        source: SOURCES.orders,
        subject: d,
        data: {
          ...state(d, 'PAYMENT_PENDING', 'PAYMENT_PENDING'),
          previousStatus: 'PENDING',
          previousSagaState: 'STARTED',
        },
        time: new Date(Date.now() - 6 * HOUR_MS),
      }),
    ]);

    const result = await replay('--order', d);
    expect(result.code).toBe(0);
    expect(result.out).toEqual([
      `published ORDER#${d}: order.created (no sequence), order.status_changed #1`,
      'replay: 2 events found (1 order), 0 already on the streams, 2 published',
      "replay: 1 published were older than their stream's max age, so no longer on it: stored again; consumers that handled them drop them by (source, subject, sequence)",
    ]);
    const ofD = (await streamMessages()).filter((message) => message.orderId === d);
    expect(ofD.map((message) => [message.msgId, message.body])).toEqual([
      [legacyId, legacyBody],
      [next!.id, JSON.stringify(next)],
    ]);
  });
});

describe('missing prerequisites (exit 3)', () => {
  it('says when npm start is not running, NATS does not answer, or a table does not exist', async () => {
    const { ORDERS_TABLE_NAME: _o, INVENTORY_TABLE_NAME: _i, PAYMENTS_TABLE_NAME: _p, ...noTables } = env;
    const noRuntime = await runReplay(['--order', 'o-1'], noTables, {
      out: () => {},
      err: (line) => expect(line).toMatch(/^events:replay: npm start is not running \(no .*absent\.json\)/),
      runtimeInfoFile: join(ROOT, '.tmp', 'absent.json'),
    });
    expect(noRuntime).toBe(3);

    const silent = `nats://127.0.0.1:${await freePort()}`;
    const errors: string[] = [];
    const noNats = await runReplay(
      ['--order', 'o-1'],
      { ...env, NATS_URL: silent },
      { out: () => {}, err: (line) => errors.push(line) },
    );
    expect(noNats).toBe(3);
    expect(errors).toEqual([
      expect.stringMatching(new RegExp(`^events:replay: NATS does not answer at ${silent}`)),
    ]);

    errors.length = 0;
    const noTable = await runReplay(
      ['--order', 'o-1'],
      { ...env, PAYMENTS_TABLE_NAME: 'no-such-table' },
      { out: () => {}, err: (line) => errors.push(line) },
    );
    expect(noTable).toBe(3);
    expect(errors.at(-1)).toBe('events:replay: table no-such-table does not exist');
  });
});

describe('resolveReplayTarget', () => {
  it("takes a deployed stack's tables from its outputs, as the operations scripts do, and NATS from the environment", () => {
    const file = join(mkdtempSync(join(tmpdir(), 'replay-test-')), 'outputs.json');
    writeFileSync(
      file,
      JSON.stringify({
        OrderSaga: {
          StateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:saga',
          OrdersTableName: 'orders-t',
          InventoryTableName: 'inventory-t',
          PaymentsTableName: 'payments-t',
        },
      }),
    );
    const target = resolveReplayTarget({ outputs: file }, { NATS_URL: 'nats://a:4222,nats://b:4222' });
    expect(target).toMatchObject({
      dynamodb: { region: 'eu-west-1' },
      tableNames: { orders: 'orders-t', inventory: 'inventory-t', payments: 'payments-t' },
      nats: { servers: ['nats://a:4222', 'nats://b:4222'] },
    });
    expect(() => resolveReplayTarget({ outputs: file }, {})).toThrow(/NATS_URL is not set/);
    expect(() => resolveReplayTarget({ outputs: file }, { ...env, NATS_URL: 'nats://a:4222' })).toThrow(
      /not both/,
    );
  });
});

describe('replayOrder', () => {
  const candidate = (aggregate: string, id: string, time: string, position?: number): ReplayCandidate => ({
    aggregate,
    id,
    type: 'order.status_changed',
    subject: 'o',
    source: SOURCES.orders,
    sequence: position === undefined ? undefined : String(position).padStart(12, '0'),
    time,
    body: '{}',
    table: 't',
    position,
  });

  it('orders each aggregate by sequence after its unsequenced events (by time, then id), aggregates by first event', () => {
    const plan = replayOrder([
      candidate('ORDER#late', 'x', '2025-03-01T12:00:09.000Z', 1),
      candidate('ORDER#o', 'e3', '2025-03-01T12:00:05.000Z', 2),
      candidate('ORDER#o', 'e2', '2025-03-01T12:00:06.000Z', 1), // a writer's clock behind: sequence wins
      candidate('ORDER#o', 'b', '2025-03-01T12:00:01.000Z'),
      candidate('ORDER#o', 'a', '2025-03-01T12:00:01.000Z'),
      candidate('ORDER#o', 'old', '2025-03-01T12:00:00.000Z'),
    ]);
    expect(plan.map(({ aggregate, events }) => [aggregate, events.map((event) => event.id)])).toEqual([
      ['ORDER#o', ['old', 'a', 'b', 'e2', 'e3']],
      ['ORDER#late', ['x']],
    ]);
  });
});

describe('flags', () => {
  const now = new Date('2025-03-01T12:00:00.000Z');

  it('reads --order, --since (a duration or an ISO time), --all and --dry-run', () => {
    expect(parseReplayArgs(['--order', 'o-1'], now)?.selection).toEqual({
      kind: 'order',
      orderId: 'o-1',
      since: undefined,
    });
    expect(parseReplayArgs(['--since', '2h', '--dry-run'], now)).toMatchObject({
      selection: { kind: 'since', since: new Date('2025-03-01T10:00:00.000Z') },
      dryRun: true,
    });
    expect(parseReplayArgs(['--order', 'o-1', '--since', '2025-03-01T11:00:00Z'], now)?.selection).toEqual({
      kind: 'order',
      orderId: 'o-1',
      since: new Date('2025-03-01T11:00:00.000Z'),
    });
    expect(parseReplayArgs(['--all'], now)?.selection).toEqual({ kind: 'all' });
  });

  it.each([
    [[], /name what to replay/],
    [['--since', 'soon'], /neither a duration/],
    [['--all', '--order', 'o-1'], /not with --order or --since/],
    [['--order', ' '], /--order needs an id/],
    [['o-1'], /positional argument/],
  ])('refuses %j with one sentence', (argv, message) => {
    expect(() => parseReplayArgs(argv, now)).toThrow(ReplayUsageError);
    expect(() => parseReplayArgs(argv, now)).toThrow(message);
  });

  it('as a command: exits 2 with one line on stderr, for no selection or half the table variables', async () => {
    const run = (argv: string[], extra: NodeJS.ProcessEnv = {}) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['infra/nats/replay.ts', ...argv], {
          cwd: ROOT,
          env: { ...process.env, ...extra },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.once('close', (code) => resolve({ code, stdout, stderr }));
      });
    const [none, half] = await Promise.all([run([]), run(['--all'], { ORDERS_TABLE_NAME: 'orders' })]);
    expect(none).toMatchObject({ code: 2, stdout: '' });
    expect(none.stderr.trimEnd().split('\n')).toEqual([
      expect.stringMatching(/^events:replay: name what to replay: .*; usage: npm run events:replay -- /),
    ]);
    expect(half).toMatchObject({ code: 2, stdout: '' });
    expect(half.stderr.trimEnd().split('\n')).toEqual([
      expect.stringMatching(
        /^events:replay: ORDERS_TABLE_NAME set but not INVENTORY_TABLE_NAME, PAYMENTS_TABLE_NAME/,
      ),
    ]);
  });
});
