import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  CreateTableCommand,
  DeleteItemCommand,
  DeleteTableCommand,
  DynamoDBClient,
  PutItemCommand,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
  type AttributeValue as DdbAttributeValue,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startDynamoDbLocal, waitUntil, type LocalService } from './processes.ts';
import { startStreamPoller, type StreamPoller, type StreamPollerOptions } from './stream-poller.ts';

const endpoint = inject('dynamodbEndpoint');
const clientConfig = {
  endpoint,
  region: 'us-east-1',
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
};

let ddb: DynamoDBClient;
let streams: DynamoDBStreamsClient;
const tables: string[] = [];
const pollers: StreamPoller[] = [];

beforeAll(() => {
  ddb = new DynamoDBClient(clientConfig);
  streams = new DynamoDBStreamsClient(clientConfig);
});

afterEach(async () => {
  await Promise.all(pollers.splice(0).map((p) => p.stop()));
});

afterAll(async () => {
  await Promise.all(
    tables.map((TableName) => ddb.send(new DeleteTableCommand({ TableName })).catch(() => {})),
  );
  ddb.destroy();
  streams.destroy();
});

/** A fresh table with a NEW_AND_OLD_IMAGES stream; returns its name and stream ARN. */
async function createTable(client = ddb): Promise<{ table: string; streamArn: string }> {
  const table = `stream-poller-${randomUUID()}`;
  const created = await client.send(
    new CreateTableCommand({
      TableName: table,
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
      StreamSpecification: { StreamEnabled: true, StreamViewType: 'NEW_AND_OLD_IMAGES' },
    }),
  );
  tables.push(table);
  const streamArn = created.TableDescription?.LatestStreamArn;
  if (!streamArn) throw new Error('table has no stream');
  return { table, streamArn };
}

async function put(
  table: string,
  pk: string,
  extra: Record<string, DdbAttributeValue> = {},
  client = ddb,
): Promise<void> {
  await client.send(new PutItemCommand({ TableName: table, Item: { pk: { S: pk }, ...extra } }));
}

async function putAll(table: string, pks: readonly string[]): Promise<void> {
  for (const pk of pks) await put(table, pk);
}

/** A handler that records every batch it receives; `answer` decides what each call returns (or throws). */
function recorder(answer: (records: DynamoDBRecord[], call: number) => unknown = () => undefined) {
  const calls: DynamoDBRecord[][] = [];
  const invoke = async (event: DynamoDBStreamEvent): Promise<unknown> => {
    calls.push(event.Records);
    return answer(event.Records, calls.length - 1);
  };
  return { calls, invoke };
}

function start(options: Omit<StreamPollerOptions, 'client'> & { client?: StreamPollerOptions['client'] }) {
  const poller = startStreamPoller({
    client: streams,
    pollIntervalMs: 20,
    retryDelayMs: 10,
    onError: () => {},
    ...options,
  });
  pollers.push(poller);
  return poller;
}

const pkOf = (record: DynamoDBRecord): string => record.dynamodb?.Keys?.pk?.S ?? '?';
const pks = (records: readonly DynamoDBRecord[]): string[] => records.map(pkOf);
const seqOf = (record: DynamoDBRecord): string => record.dynamodb?.SequenceNumber ?? '';

async function eventually(what: string, probe: () => boolean, timeoutMs = 15_000): Promise<void> {
  await waitUntil(what, async () => probe(), { timeoutMs, intervalMs: 10 });
}

describe('startStreamPoller against DynamoDB Local', () => {
  it('delivers INSERT, MODIFY and REMOVE in the Lambda record shape with both images', async () => {
    const { table, streamArn } = await createTable();
    const { calls, invoke } = recorder();
    const poller = start({ streamArn, region: 'eu-west-1', invoke });
    await put(table, 'a', {
      n: { N: '1' },
      bin: { B: new Uint8Array([1, 2, 3]) },
      bs: { BS: [new Uint8Array([255])] },
    });
    await ddb.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { pk: { S: 'a' } },
        UpdateExpression: 'SET n = :n, m = :m',
        ExpressionAttributeValues: {
          ':n': { N: '2' },
          ':m': { M: { l: { L: [{ BOOL: true }, { NULL: true }] } } },
        },
      }),
    );
    await ddb.send(new DeleteItemCommand({ TableName: table, Key: { pk: { S: 'a' } } }));
    await poller.drained();

    const records = calls.flat();
    expect(records.map((r) => r.eventName)).toEqual(['INSERT', 'MODIFY', 'REMOVE']);
    const common = {
      eventID: expect.any(String),
      eventVersion: '1.1',
      eventSource: 'aws:dynamodb',
      awsRegion: 'eu-west-1',
      eventSourceARN: streamArn,
    };
    const dynamodb = {
      ApproximateCreationDateTime: expect.any(Number),
      Keys: { pk: { S: 'a' } },
      SequenceNumber: expect.stringMatching(/^\d+$/),
      SizeBytes: expect.any(Number),
      StreamViewType: 'NEW_AND_OLD_IMAGES',
    };
    const v1 = { pk: { S: 'a' }, n: { N: '1' }, bin: { B: 'AQID' }, bs: { BS: ['/w=='] } };
    const v2 = { ...v1, n: { N: '2' }, m: { M: { l: { L: [{ BOOL: true }, { NULL: true }] } } } };
    expect(records[0]).toStrictEqual({
      ...common,
      eventName: 'INSERT',
      dynamodb: { ...dynamodb, NewImage: v1 },
    });
    expect(records[1]).toStrictEqual({
      ...common,
      eventName: 'MODIFY',
      dynamodb: { ...dynamodb, NewImage: v2, OldImage: v1 },
    });
    expect(records[2]).toStrictEqual({
      ...common,
      eventName: 'REMOVE',
      dynamodb: { ...dynamodb, OldImage: v2 },
    });
    // Epoch seconds (not milliseconds, not a Date), as Lambda delivers it.
    const at = records[0]?.dynamodb?.ApproximateCreationDateTime ?? 0;
    expect(Math.abs(at - Date.now() / 1000)).toBeLessThan(3600);
    // The event survives JSON, like a real Lambda payload.
    expect(JSON.parse(JSON.stringify(records))).toStrictEqual(records);
    const sequence = records.map((r) => BigInt(seqOf(r)));
    expect([...sequence].sort((x, y) => (x < y ? -1 : 1))).toEqual(sequence);
  });

  it('keeps only records that match a filter; the rest never reach the handler', async () => {
    const { table, streamArn } = await createTable();
    const { calls, invoke } = recorder();
    const poller = start({
      streamArn,
      invoke,
      batchSize: 2,
      filterCriteria: {
        Filters: [
          {
            Pattern: JSON.stringify({
              eventName: ['INSERT'],
              dynamodb: { NewImage: { kind: { S: ['event'] } } },
            }),
          },
        ],
      },
    });
    await put(table, 'e1', { kind: { S: 'event' } });
    await put(table, 'c1', { kind: { S: 'command' } });
    await put(table, 'x1');
    await put(table, 'e2', { kind: { S: 'event' } });
    await put(table, 'e1', { kind: { S: 'event' }, v: { N: '2' } }); // MODIFY of an event: filtered out
    await ddb.send(new DeleteItemCommand({ TableName: table, Key: { pk: { S: 'e2' } } }));
    await put(table, 'e3', { kind: { S: 'event' } });
    await poller.drained();
    expect(pks(calls.flat())).toEqual(['e1', 'e2', 'e3']);
    expect(calls.flat().every((r) => r.eventName === 'INSERT')).toBe(true);
  });

  it('respects batchSize, and filtered-out records do not count toward it', async () => {
    const { table, streamArn } = await createTable();
    // Everything is in the stream before the poller starts, so one GetRecords reads it all.
    await putAll(table, ['a1', 'b1', 'a2', 'b2', 'a3', 'b3', 'a4', 'b4', 'a5', 'a6', 'a7']);
    const { calls, invoke } = recorder();
    const poller = start({
      streamArn,
      invoke,
      batchSize: 3,
      filterCriteria: { Filters: [{ Pattern: '{"dynamodb":{"Keys":{"pk":{"S":[{"prefix":"a"}]}}}}' }] },
    });
    await poller.drained();
    expect(calls.map(pks)).toEqual([['a1', 'a2', 'a3'], ['a4', 'a5', 'a6'], ['a7']]);
  });

  it('gathers records for maximumBatchingWindowMs before invoking', async () => {
    const { table, streamArn } = await createTable();
    const { calls, invoke } = recorder();
    const poller = start({ streamArn, invoke, batchSize: 10, maximumBatchingWindowMs: 1_500 });
    await poller.drained();
    await putAll(table, ['w1', 'w2', 'w3', 'w4']);
    await poller.drained();
    expect(calls.map(pks)).toEqual([['w1', 'w2', 'w3', 'w4']]);
  });

  it('with LATEST, skips what was written before it started', async () => {
    const { table, streamArn } = await createTable();
    await put(table, 'before');
    const { calls, invoke } = recorder();
    const poller = start({ streamArn, invoke, startingPosition: 'LATEST' });
    await poller.drained();
    await put(table, 'after');
    await poller.drained();
    expect(pks(calls.flat())).toEqual(['after']);
  });

  it('retries a batch whose handler throws, with the same records, and skips nothing', async () => {
    const { table, streamArn } = await createTable();
    await putAll(table, ['r1', 'r2', 'r3', 'r4', 'r5']);
    const errors: Array<[unknown, number]> = [];
    const { calls, invoke } = recorder((records, call) => {
      // Lambda serializes every invocation: mutating the event must not leak into the retry.
      records.splice(0, 1);
      if (call === 0) throw new Error('boom');
    });
    const poller = start({
      streamArn,
      invoke,
      batchSize: 3,
      onError: (e, n) => errors.push([e, n]),
    });
    await poller.drained();
    expect(calls.length).toBe(3);
    // calls[] holds the (mutated) arrays; the mutation removed each batch's first record.
    expect(calls.map(pks)).toEqual([['r2', 'r3'], ['r2', 'r3'], ['r5']]);
    expect(errors).toEqual([[expect.objectContaining({ message: 'boom' }), 1]]);
  });

  it('after batchItemFailures on the 3rd of 5 records, redelivers 3, 4 and 5 but not 1 and 2', async () => {
    const { table, streamArn } = await createTable();
    await putAll(table, ['r1', 'r2', 'r3', 'r4', 'r5']);
    const { calls, invoke } = recorder((records, call) =>
      call === 0
        ? { batchItemFailures: [{ itemIdentifier: seqOf(records[2]!) }] }
        : { batchItemFailures: [] },
    );
    const poller = start({ streamArn, invoke, batchSize: 5, reportBatchItemFailures: true });
    await poller.drained();
    expect(calls.map(pks)).toEqual([
      ['r1', 'r2', 'r3', 'r4', 'r5'],
      ['r3', 'r4', 'r5'],
    ]);
  });

  it('checkpoints before the lowest of several failed items', async () => {
    const { table, streamArn } = await createTable();
    await putAll(table, ['r1', 'r2', 'r3', 'r4', 'r5']);
    const { calls, invoke } = recorder((records, call) =>
      call === 0
        ? {
            batchItemFailures: [
              { itemIdentifier: seqOf(records[3]!) },
              { itemIdentifier: seqOf(records[1]!) },
            ],
          }
        : null,
    );
    const poller = start({ streamArn, invoke, batchSize: 5, reportBatchItemFailures: true });
    await poller.drained();
    expect(calls.map(pks)).toEqual([
      ['r1', 'r2', 'r3', 'r4', 'r5'],
      ['r2', 'r3', 'r4', 'r5'],
    ]);
  });

  it.each([
    ['an identifier not in the batch', { itemIdentifier: '99999999999999999999999' }],
    ['an empty identifier', { itemIdentifier: '' }],
    ['a null identifier', { itemIdentifier: null }],
    ['a misspelt key', { itemIdentifer: 'x' }],
  ])('redelivers the whole batch for %s', async (_label, failure) => {
    const { table, streamArn } = await createTable();
    await putAll(table, ['r1', 'r2', 'r3']);
    const { calls, invoke } = recorder((_records, call) =>
      call === 0 ? { batchItemFailures: [failure] } : {},
    );
    const poller = start({ streamArn, invoke, reportBatchItemFailures: true });
    await poller.drained();
    expect(calls.map(pks)).toEqual([
      ['r1', 'r2', 'r3'],
      ['r1', 'r2', 'r3'],
    ]);
  });

  it('ignores batchItemFailures unless reportBatchItemFailures is on', async () => {
    const { table, streamArn } = await createTable();
    await putAll(table, ['r1', 'r2']);
    const { calls, invoke } = recorder((records) => ({
      batchItemFailures: [{ itemIdentifier: seqOf(records[0]!) }],
    }));
    const poller = start({ streamArn, invoke });
    await poller.drained();
    expect(calls.map(pks)).toEqual([['r1', 'r2']]);
  });

  it('after maximumRetryAttempts hands the records to onDiscard, and later records still flow', async () => {
    const { table, streamArn } = await createTable();
    const discarded: DynamoDBRecord[][] = [];
    const errors: number[] = [];
    const { calls, invoke } = recorder((records) => {
      if (pks(records).includes('poison')) throw new Error('poison');
    });
    const poller = start({
      streamArn,
      invoke,
      batchSize: 1,
      maximumRetryAttempts: 2,
      onDiscard: (records) => discarded.push(records),
      onError: (_e, attempt) => errors.push(attempt),
    });
    await putAll(table, ['ok1', 'poison', 'ok2', 'ok3']);
    await poller.drained();
    expect(calls.map(pks)).toEqual([['ok1'], ['poison'], ['poison'], ['poison'], ['ok2'], ['ok3']]);
    expect(discarded.map(pks)).toEqual([['poison']]);
    expect(errors).toEqual([1, 2, 3]);
  });

  it('discards only the failed tail of a partially failed batch', async () => {
    const { table, streamArn } = await createTable();
    await putAll(table, ['r1', 'r2', 'r3', 'r4']);
    const discarded: DynamoDBRecord[][] = [];
    const { calls, invoke } = recorder((records) => {
      const index = pks(records).indexOf('r3');
      return index >= 0 ? { batchItemFailures: [{ itemIdentifier: seqOf(records[index]!) }] } : undefined;
    });
    const poller = start({
      streamArn,
      invoke,
      batchSize: 3,
      reportBatchItemFailures: true,
      maximumRetryAttempts: 0,
      onDiscard: (records) => discarded.push(records),
      onError: () => {},
    });
    await poller.drained();
    expect(calls.map(pks)).toEqual([['r1', 'r2', 'r3'], ['r4']]);
    expect(discarded.map(pks)).toEqual([['r3']]);
  });

  it('stop() waits for the in-flight invocation and then delivers nothing more', async () => {
    const { table, streamArn } = await createTable();
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const { calls, invoke } = recorder(() => held);
    const poller = start({ streamArn, invoke });
    await put(table, 'first');
    await eventually('the first invocation', () => calls.length === 1);
    let stopped = false;
    const stopping = poller.stop().then(() => (stopped = true));
    await put(table, 'second');
    await new Promise((resolve) => setImmediate(resolve));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(pks(calls.flat())).toEqual(['first']);
    await expect(poller.drained()).rejects.toThrow(/stopped/);
  });

  it('leaves no timers or sockets behind: a process that stops its poller exits on its own', async () => {
    const { table, streamArn } = await createTable();
    await put(table, 'p1');
    const poller = fileURLToPath(new URL('./stream-poller.ts', import.meta.url));
    const script = `
      import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
      import { startStreamPoller } from ${JSON.stringify(poller)};
      const client = new DynamoDBStreamsClient(${JSON.stringify(clientConfig)});
      const seen = [];
      const p = startStreamPoller({
        client, streamArn: process.env.STREAM_ARN, pollIntervalMs: 5, retryDelayMs: 5,
        invoke: async (event) => { seen.push(...event.Records); },
      });
      await p.drained();
      await p.stop();
      client.destroy();
      console.log(JSON.stringify({ seen: seen.length }));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { ...process.env, STREAM_ARN: streamArn },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exit = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(-1);
      }, 20_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    expect(output.trim()).toBe('{"seen":1}');
    expect(exit).toBe(0);
  });

  it('rejects invalid filters and unsupported options at start, like Lambda rejects the mapping', () => {
    const invoke = async () => {};
    const streamArn = 'arn:aws:dynamodb:ddblocal:000000000000:table/x/stream/1';
    expect(() =>
      startStreamPoller({
        client: streams,
        streamArn,
        invoke,
        filterCriteria: { Filters: [{ Pattern: '{"eventName":[{"wildcard":"IN*"}]}' }] },
      }),
    ).toThrow(/unsupported operator "wildcard"/);
    expect(() =>
      startStreamPoller({
        client: streams,
        streamArn,
        invoke,
        filterCriteria: { Filters: [{ Pattern: '{' }] },
      }),
    ).toThrow(/not JSON/);
    expect(() =>
      startStreamPoller({ client: streams, streamArn, invoke, bisectBatchOnFunctionError: true }),
    ).toThrow(/bisect/);
    expect(() => startStreamPoller({ client: streams, streamArn, invoke, batchSize: 0 })).toThrow(RangeError);
  });
});

/* ---------------------------------------------------------------------------------------------- */
/* Shard lifecycle against a scripted Streams API: rotation, expiry, trimming                      */
/* ---------------------------------------------------------------------------------------------- */

interface FakeShard {
  id: string;
  parent?: string;
  /** sequence numbers */
  records: number[];
  closed: boolean;
  /** listed by DescribeStream */
  visible: boolean;
}

/** A minimal DynamoDB Streams API: iterators are `shard:position`; faults are injected per call. */
function fakeStreams(shards: FakeShard[]) {
  const calls: string[] = [];
  const faults: Array<{ on: string; name: string }> = [];
  const seq = (n: number) => String(n).padStart(21, '0');
  const send = async (command: { constructor: { name: string }; input: Record<string, unknown> }) => {
    const op = command.constructor.name.replace(/Command$/, '');
    calls.push(op);
    const fault = faults.findIndex((f) => f.on === op);
    if (fault >= 0) {
      const { name } = faults.splice(fault, 1)[0]!;
      throw Object.assign(new Error(name), { name });
    }
    const input = command.input;
    if (op === 'DescribeStream') {
      return {
        StreamDescription: {
          StreamStatus: 'ENABLED',
          Shards: shards
            .filter((s) => s.visible)
            .map((s) => ({
              ShardId: s.id,
              ParentShardId: s.parent,
              SequenceNumberRange: {
                StartingSequenceNumber: seq(s.records[0] ?? 0),
                EndingSequenceNumber: s.closed ? seq(s.records.at(-1) ?? 0) : undefined,
              },
            })),
        },
      };
    }
    if (op === 'GetShardIterator') {
      const shard = shards.find((s) => s.id === input.ShardId)!;
      const type = input.ShardIteratorType;
      const position =
        type === 'TRIM_HORIZON'
          ? 0
          : type === 'LATEST'
            ? shard.records.length
            : shard.records.findIndex((n) => n > Number(input.SequenceNumber));
      return { ShardIterator: `${shard.id}:${position < 0 ? shard.records.length : position}` };
    }
    if (op === 'GetRecords') {
      const [id, at] = String(input.ShardIterator).split(':') as [string, string];
      const shard = shards.find((s) => s.id === id)!;
      const from = Number(at);
      const page = shard.records.slice(from, from + 2); // small pages to exercise iterators
      const next = from + page.length;
      return {
        Records: page.map((n) => ({
          eventID: `e${n}`,
          eventName: 'INSERT',
          eventVersion: '1.1',
          eventSource: 'aws:dynamodb',
          awsRegion: 'ddblocal',
          dynamodb: {
            ApproximateCreationDateTime: new Date(1_700_000_000_000),
            Keys: { pk: { S: `k${n}` } },
            NewImage: { pk: { S: `k${n}` } },
            SequenceNumber: seq(n),
            SizeBytes: 10,
            StreamViewType: 'NEW_AND_OLD_IMAGES',
          },
        })),
        NextShardIterator: shard.closed && next >= shard.records.length ? undefined : `${id}:${next}`,
      };
    }
    throw new Error(`unexpected ${op}`);
  };
  return { client: { send } as unknown as DynamoDBStreamsClient, calls, faults };
}

describe('startStreamPoller shard lifecycle (scripted Streams API)', () => {
  it('finishes a closed parent shard before its children, and finds children that appear later', async () => {
    const shards: FakeShard[] = [
      { id: 'parent', records: [1, 2, 3], closed: true, visible: true },
      { id: 'child', parent: 'parent', records: [4, 5, 6, 7, 8], closed: false, visible: false },
    ];
    const fake = fakeStreams(shards);
    const { calls, invoke } = recorder();
    const poller = start({ client: fake.client, streamArn: 'arn:fake', invoke, batchSize: 2 });
    await eventually('the parent shard', () => calls.flat().length === 3);
    shards[1]!.visible = true;
    await poller.drained();
    expect(calls.flat().map((r) => Number(seqOf(r)))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(calls.every((batch) => batch.length <= 2)).toBe(true);
  });

  it('starts LATEST on open shards and skips shards that were closed already', async () => {
    const shards: FakeShard[] = [
      { id: 'old', records: [1, 2], closed: true, visible: true },
      { id: 'open', parent: 'old', records: [3], closed: false, visible: true },
    ];
    const fake = fakeStreams(shards);
    const { calls, invoke } = recorder();
    const poller = start({ client: fake.client, streamArn: 'arn:fake', invoke, startingPosition: 'LATEST' });
    await poller.drained();
    shards[1]!.records.push(4, 5);
    await poller.drained();
    expect(calls.flat().map((r) => Number(seqOf(r)))).toEqual([4, 5]);
  });

  it('re-acquires expired or trimmed iterators from its checkpoint without skipping or repeating', async () => {
    const shards: FakeShard[] = [
      { id: 'only', records: [1, 2, 3, 4, 5, 6, 7], closed: false, visible: true },
    ];
    const fake = fakeStreams(shards);
    const errors: string[] = [];
    fake.faults.push(
      { on: 'GetRecords', name: 'ExpiredIteratorException' },
      { on: 'GetShardIterator', name: 'InternalServerError' },
    );
    const { calls, invoke } = recorder(async (_records, call) => {
      if (call === 1) {
        fake.faults.push({ on: 'GetRecords', name: 'ExpiredIteratorException' });
        fake.faults.push({ on: 'GetRecords', name: 'TrimmedDataAccessException' });
      }
    });
    const poller = start({
      client: fake.client,
      streamArn: 'arn:fake',
      invoke,
      onError: (e) => errors.push((e as Error).name),
    });
    await poller.drained();
    expect(calls.flat().map((r) => Number(seqOf(r)))).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(fake.calls.filter((op) => op === 'GetShardIterator').length).toBeGreaterThanOrEqual(4);
    expect(errors).toContain('InternalServerError');
    expect(errors).not.toContain('ExpiredIteratorException');
  });

  it("passes over DynamoDB Local's refusal of a fresh stream's first read, but reports it when it repeats", async () => {
    for (const refusals of [1, 3]) {
      const fake = fakeStreams([{ id: 'only', records: [1, 2, 3], closed: false, visible: true }]);
      for (let n = 0; n < refusals; n++)
        fake.faults.push({ on: 'GetRecords', name: 'TrimmedDataAccessException' });
      const errors: Array<[string, number]> = [];
      const { calls, invoke } = recorder();
      const poller = start({
        client: fake.client,
        streamArn: 'arn:fake',
        invoke,
        onError: (e, attempt) => errors.push([(e as Error).name, attempt]),
      });
      await poller.drained();
      expect(
        calls.flat().map((r) => Number(seqOf(r))),
        `${refusals}`,
      ).toEqual([1, 2, 3]);
      expect(errors, `${refusals}`).toEqual(
        refusals === 1
          ? []
          : [
              ['TrimmedDataAccessException', 2],
              ['TrimmedDataAccessException', 3],
            ],
      );
      await poller.stop();
    }
  });

  it('converts the SDK record into the Lambda shape (Date → epoch seconds, region and ARN replaced)', async () => {
    const fake = fakeStreams([{ id: 'only', records: [1], closed: false, visible: true }]);
    const { calls, invoke } = recorder();
    const poller = start({ client: fake.client, streamArn: 'arn:fake', invoke });
    await poller.drained();
    expect(calls[0]?.[0]).toStrictEqual({
      eventID: 'e1',
      eventName: 'INSERT',
      eventVersion: '1.1',
      eventSource: 'aws:dynamodb',
      awsRegion: 'us-east-1',
      dynamodb: {
        ApproximateCreationDateTime: 1_700_000_000,
        Keys: { pk: { S: 'k1' } },
        NewImage: { pk: { S: 'k1' } },
        SequenceNumber: '000000000000000000001',
        SizeBytes: 10,
        StreamViewType: 'NEW_AND_OLD_IMAGES',
      },
      eventSourceARN: 'arn:fake',
    });
  });
});

describe('startStreamPoller against a DynamoDB Local of its own', () => {
  // DynamoDB Local's TTL pass walks every table of its instance. The suite's shared instance holds
  // dozens of tables with expired items by the time this runs, and one pass once took more than
  // 150 s there; an instance holding one table deletes within seconds.
  let own: LocalService;
  let ownDdb: DynamoDBClient;
  let ownStreams: DynamoDBStreamsClient;

  beforeAll(async () => {
    own = await startDynamoDbLocal();
    const config = { ...clientConfig, endpoint: own.url };
    ownDdb = new DynamoDBClient(config);
    ownStreams = new DynamoDBStreamsClient(config);
  });

  afterAll(async () => {
    ownDdb?.destroy();
    ownStreams?.destroy();
    await own?.stop();
  });

  it('delivers a TTL delete as REMOVE with the DynamoDB service identity', async () => {
    const { table, streamArn } = await createTable(ownDdb);
    await ownDdb.send(
      new UpdateTimeToLiveCommand({
        TableName: table,
        TimeToLiveSpecification: { Enabled: true, AttributeName: 'expiresAt' },
      }),
    );
    const { calls, invoke } = recorder();
    start({ streamArn, invoke, client: ownStreams });
    await put(table, 'expired', { expiresAt: { N: String(Math.floor(Date.now() / 1000) - 60) } }, ownDdb);
    await eventually('the TTL delete', () => calls.flat().length >= 2, 60_000);
    const removal = calls.flat()[1];
    expect(removal?.eventName).toBe('REMOVE');
    expect(removal?.userIdentity).toEqual({ type: 'Service', principalId: 'dynamodb.amazonaws.com' });
    expect(removal?.dynamodb?.OldImage?.pk).toEqual({ S: 'expired' });
    expect(calls.flat()[0]?.userIdentity).toBeUndefined();
  }, 120_000);
});
