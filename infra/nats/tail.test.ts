import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEvent, formatSequence, type CloudEvent } from '../../events/envelope.ts';
import { connectEventPublisher, ensureStreams, type EventPublisher } from '../../shared/nats.ts';
import { freePort, startNatsServer, type LocalService } from '../local/processes.ts';
import { streamDefinitions } from './streams.ts';
import {
  Backlog,
  lineFor,
  parseTailArgs,
  streamFilters,
  subjectMatches,
  tailNatsAccess,
  TailUsageError,
} from './tail.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const now = new Date('2025-03-01T12:00:00.000Z');

describe('parseTailArgs', () => {
  it('follows new messages of every order by default', () => {
    expect(parseTailArgs([], now)).toEqual({ order: undefined, subject: undefined, start: { kind: 'new' } });
  });

  it('reads --order, --subject, --all and --since (a duration or an ISO time)', () => {
    expect(parseTailArgs(['--order', 'o-1', '--subject', '*.cancelled', '--all'], now)).toEqual({
      order: 'o-1',
      subject: '*.cancelled',
      start: { kind: 'all' },
    });
    expect(parseTailArgs(['--since', '10m'], now).start).toEqual({
      kind: 'since',
      time: new Date('2025-03-01T11:50:00.000Z'),
    });
    expect(parseTailArgs(['--since', '2h'], now).start).toMatchObject({
      time: new Date('2025-03-01T10:00:00.000Z'),
    });
    expect(parseTailArgs(['--since', '2025-03-01T11:00:00+01:00'], now).start).toMatchObject({
      time: new Date('2025-03-01T10:00:00.000Z'),
    });
  });

  it.each([
    [['--bogus'], /Unknown option '--bogus'/],
    [['stray'], /positional argument/],
    [['--order'], /argument missing/],
    [['--order', ' '], /--order needs an id/],
    [['--subject', 'order.**'], /not a NATS subject pattern/],
    [['--subject', 'order.>.x'], /not a NATS subject pattern/],
    [
      ['--subject', 'orders.*'],
      /matches none of the streams' subjects \(order\.\*, inventory\.\*, payment\.\*\)/,
    ],
    [['--since', '10 minutes'], /neither a duration/],
    [['--since', '10m', '--all'], /exclude each other/],
  ])('refuses %j with one sentence', (args, message) => {
    expect(() => parseTailArgs(args, now)).toThrow(TailUsageError);
    expect(() => parseTailArgs(args, now)).toThrow(message);
  });
});

describe('subjects', () => {
  it('matches NATS wildcards: * one token, > the rest', () => {
    expect(subjectMatches('order.*', 'order.created')).toBe(true);
    expect(subjectMatches('*.cancelled', 'payment.cancelled')).toBe(true);
    expect(subjectMatches('*.cancelled', 'payment.failed')).toBe(false);
    expect(subjectMatches('>', 'inventory.low_stock')).toBe(true);
    expect(subjectMatches('order', 'order.created')).toBe(false);
    expect(subjectMatches('order.created.x', 'order.created')).toBe(false);
  });

  it('lets the server filter when the pattern lies within one stream, else takes every stream it can match', () => {
    expect(streamFilters(undefined)).toEqual({
      ORDERS: 'order.*',
      INVENTORY: 'inventory.*',
      PAYMENTS: 'payment.*',
    });
    expect(streamFilters('order.completed')).toEqual({ ORDERS: 'order.completed' });
    expect(streamFilters('payment.*')).toEqual({ PAYMENTS: 'payment.*' });
    expect(streamFilters('*.cancelled')).toEqual({
      ORDERS: 'order.*',
      INVENTORY: 'inventory.*',
      PAYMENTS: 'payment.*',
    });
    expect(streamFilters('order.>')).toEqual({ ORDERS: 'order.*' });
  });
});

describe('lineFor', () => {
  const event = {
    ...createEvent('order.cancelled', {
      source: 'order-saga/orders',
      subject: 'o-1',
      data: { orderId: 'o-1', status: 'CANCELLED', sagaState: 'COMPENSATED', reason: 'PAYMENT_FAILED' },
      time: now,
    }),
    sequence: formatSequence(4),
  };
  const message = (body: unknown) => ({
    subject: 'order.cancelled',
    streamSequence: 9,
    time: now,
    json: () => body,
  });
  const plain = { colors: false };

  it('leaves out other orders and other subjects', () => {
    expect(lineFor(message(event), { order: 'o-1' }, plain)?.line).toContain('o-1  #4');
    expect(lineFor(message(event), { order: 'o-2' }, plain)).toBeUndefined();
    expect(lineFor(message(event), { subject: 'payment.*' }, plain)).toBeUndefined();
    expect(lineFor(message(event), { subject: '*.cancelled' }, plain)?.at).toBe(now.getTime());
  });

  it('shows a message that is not a valid event, whatever the order filter', () => {
    const { sequence: _dropped, ...withoutSequence } = event;
    expect(lineFor(message(withoutSequence), { order: 'o-2' }, plain)?.line).toContain(
      'not a valid event (stream sequence 9): sequence:',
    );
  });
});

describe('Backlog', () => {
  const entry = (line: string, at: number) => ({ line, at });

  it('holds the history until every stream caught up, prints it by event time, then prints as it comes', () => {
    const printed: string[] = [];
    const backlog = new Backlog(['ORDERS', 'PAYMENTS'], (line) => printed.push(line));
    backlog.add('PAYMENTS', 1, entry('payment at 2', 2), 1);
    backlog.add('ORDERS', 1, entry('order at 1', 1), 1);
    backlog.add('ORDERS', 2, entry('order at 3', 3), 0);
    backlog.add('PAYMENTS', 2, undefined, 1); // left out by a filter: still counts
    expect(printed).toEqual([]);
    backlog.add('PAYMENTS', 3, entry('payment at 3', 3), 0);
    // Same time: ORDERS before PAYMENTS, then by stream sequence.
    expect(printed).toEqual(['order at 1', 'payment at 2', 'order at 3', 'payment at 3']);
    backlog.add('ORDERS', 3, entry('live', 0), 0);
    expect(printed.at(-1)).toBe('live');
  });

  it('prints at once with nothing to wait for, and does not wait for good on a stream that goes quiet', async () => {
    const printed: string[] = [];
    new Backlog([], (line) => printed.push(line));
    const backlog = new Backlog(['ORDERS', 'PAYMENTS'], (line) => printed.push(line), 50);
    backlog.add('ORDERS', 1, entry('order', 1), 0);
    await sleep(150);
    expect(printed).toEqual(['order']);
  });
});

describe('tailNatsAccess', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tail-test-'));
  const file = join(dir, 'local-runtime.json');
  const info = (pid: number) => ({
    pid,
    apiUrl: 'http://127.0.0.1:3000',
    natsUrl: 'nats://127.0.0.1:40001',
    stripeUrl: 'http://127.0.0.1:12111',
    stepFunctionsUrl: 'http://127.0.0.1:8083',
    dynamodbEndpoint: 'http://127.0.0.1:8000',
    stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:saga',
    tableNames: { orders: 'o', inventory: 'i', payments: 'p' },
    startedAt: '2025-03-01T12:00:00.000Z',
  });

  it('takes NATS_URL, else the running npm start, else 127.0.0.1:4222', () => {
    writeFileSync(file, JSON.stringify(info(process.pid)));
    expect(tailNatsAccess({ NATS_URL: 'nats://elsewhere:4222' }, file).servers).toEqual([
      'nats://elsewhere:4222',
    ]);
    expect(tailNatsAccess({}, file).servers).toEqual(['nats://127.0.0.1:40001']);
    // A file left by an npm start that is gone (no such process), or a damaged one, is ignored.
    writeFileSync(file, JSON.stringify(info(2 ** 22 + 12_345)));
    expect(tailNatsAccess({}, file).servers).toEqual(['nats://127.0.0.1:4222']);
    writeFileSync(file, '{');
    expect(tailNatsAccess({}, file).servers).toEqual(['nats://127.0.0.1:4222']);
    expect(tailNatsAccess({}, join(dir, 'absent.json')).servers).toEqual(['nats://127.0.0.1:4222']);
  });
});

/*
 * The command itself, as a child process, against a server of the test's own.
 */
describe('npm run events:tail', () => {
  let nats: LocalService;
  let publisher: EventPublisher;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    await ensureStreams(nats.url, streamDefinitions(1));
    publisher = await connectEventPublisher(nats.url);
  });

  afterAll(async () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await publisher?.close();
    await nats?.stop();
  });

  function tail(args: string[], env: NodeJS.ProcessEnv = {}) {
    const child = spawn(process.execPath, ['infra/nats/tail.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, NATS_URL: nats.url, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const output = { stdout: '', stderr: '' };
    child.stdout!.on('data', (chunk: Buffer) => (output.stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output.stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const lines = () => output.stdout.split('\n').filter((line) => line.length > 0);
    return { child, output, exited, lines };
  }

  async function until(what: string, probe: () => boolean, details: () => string, timeoutMs = 15_000) {
    const deadline = Date.now() + timeoutMs;
    while (!probe()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${details()}`);
      await sleep(25);
    }
  }

  const at = (second: number) => new Date(Date.UTC(2025, 2, 1, 12, 0, second));
  let position = 0;
  function publish<E extends CloudEvent>(event: Omit<E, 'sequence'>, sequence = ++position) {
    const sequenced = { ...event, sequence: formatSequence(sequence) };
    return publisher.publish({ subject: event.type, id: event.id, body: JSON.stringify(sequenced) });
  }
  const orderState = (orderId: string) => ({ orderId, status: 'PENDING', sagaState: 'STARTED' }) as const;

  it('prints the history of one order in event-time order, then follows it, and stops on Ctrl-C with 0', async () => {
    const orders = 'order-saga/orders';
    const payments = 'order-saga/payments';
    const money = { orderId: 'o-1', paymentIntentId: 'pi_1', amount: 1250, currency: 'eur' };
    // Published out of time order across streams: the tail merges its history by event time.
    await publish(
      createEvent('payment.initiated', {
        source: payments,
        subject: 'o-1',
        data: { ...money, status: 'requires_payment_method' },
        time: at(2),
      }),
      1,
    );
    await publish(
      createEvent('order.created', {
        source: orders,
        subject: 'o-1',
        data: {
          ...orderState('o-1'),
          customerId: 'c-1',
          items: [{ sku: 'SKU-1', quantity: 2 }],
          currency: 'eur',
        },
        time: at(1),
      }),
      1,
    );
    await publish(
      createEvent('order.created', {
        source: orders,
        subject: 'o-2',
        data: {
          ...orderState('o-2'),
          customerId: 'c-2',
          items: [{ sku: 'SKU-1', quantity: 1 }],
          currency: 'eur',
        },
        time: at(1),
      }),
      1,
    );
    await publish(
      createEvent('order.status_changed', {
        source: orders,
        subject: 'o-1',
        data: {
          orderId: 'o-1',
          status: 'PAYMENT_PENDING',
          sagaState: 'PAYMENT_PENDING',
          previousStatus: 'PENDING',
          previousSagaState: 'STARTED',
        },
        time: at(3),
      }),
      2,
    );

    const run = tail(['--order', 'o-1', '--all']);
    const show = () => `stdout:\n${run.output.stdout}\nstderr:\n${run.output.stderr}`;
    await until('the history', () => run.lines().length >= 3, show);
    expect(run.output.stderr).toMatch(
      /^events:tail: following ORDERS, INVENTORY, PAYMENTS at nats:\/\/127\.0\.0\.1:\d+ \(order o-1\) from the first stored message; Ctrl-C stops\n$/,
    );

    await publish(
      createEvent('payment.succeeded', { source: payments, subject: 'o-1', data: money, time: at(4) }),
      2,
    );
    await publish(
      createEvent('order.cancelled', {
        source: orders,
        subject: 'o-2',
        data: { orderId: 'o-2', status: 'CANCELLED', sagaState: 'COMPENSATED', reason: 'OUT_OF_STOCK' },
        time: at(4),
      }),
      2,
    );
    await until('the live event', () => run.lines().length >= 4, show);
    await sleep(300); // nothing for o-2 may follow

    // Not a TTY: no colour.
    expect(run.lines()).toEqual([
      '12:00:01.000Z  order.created         o-1  #1  PENDING customer c-1 · SKU-1×2 · EUR',
      '12:00:02.000Z  payment.initiated     o-1  #1  12.50 EUR pi_1 requires_payment_method',
      '12:00:03.000Z  order.status_changed  o-1  #2  PENDING → PAYMENT_PENDING (saga STARTED → PAYMENT_PENDING)',
      '12:00:04.000Z  payment.succeeded     o-1  #2  12.50 EUR pi_1',
    ]);

    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
  });

  it('follows only new messages by default, filtered by subject pattern', async () => {
    const run = tail(['--subject', '*.cancelled']);
    const show = () => `stdout:\n${run.output.stdout}\nstderr:\n${run.output.stderr}`;
    await until('the start', () => run.output.stderr.includes('Ctrl-C stops'), show);
    expect(run.output.stderr).toContain('(subjects *.cancelled) from new messages on');
    await publish(
      createEvent('order.created', {
        source: 'order-saga/orders',
        subject: 'o-3',
        data: {
          ...orderState('o-3'),
          customerId: 'c-3',
          items: [{ sku: 'SKU-1', quantity: 1 }],
          currency: 'eur',
        },
        time: at(5),
      }),
      1,
    );
    await publish(
      createEvent('payment.cancelled', {
        source: 'order-saga/payments',
        subject: 'o-3',
        data: {
          orderId: 'o-3',
          paymentIntentId: 'pi_3',
          amount: 500,
          currency: 'usd',
          reason: 'PAYMENT_TIMEOUT',
        },
        time: at(6),
      }),
      1,
    );
    await until('the cancellation', () => run.lines().length >= 1, show);
    await sleep(300);
    expect(run.lines()).toEqual([
      '12:00:06.000Z  payment.cancelled     o-3  #1  5.00 USD pi_3 reason PAYMENT_TIMEOUT',
    ]);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('exits 2 with one line on a bad flag', async () => {
    const run = tail(['--since', '10 minutes']);
    expect(await run.exited).toBe(2);
    expect(run.output.stderr).toBe(
      'events:tail: --since 10 minutes is neither a duration (30s, 10m, 2h, 1d) nor an ISO time; usage: npm run events:tail -- [--order ID] [--subject PATTERN] [--since 10m|ISO-TIME | --all]\n',
    );
    expect(run.output.stdout).toBe('');
  });

  it('exits 3 with one line when NATS does not answer', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const run = tail([], { NATS_URL: url });
    expect(await run.exited).toBe(3);
    expect(run.output.stderr).toMatch(
      new RegExp(
        `^events:tail: NATS does not answer at ${url} \\(.*\\); set NATS_URL, or start it: npm start\\n$`,
      ),
    );
  });
});
