/**
 * A local stand-in for AWS Lambda's event source mapping (ESM) on a DynamoDB stream: it polls the
 * DynamoDB Streams API (DynamoDB Local's, or a real one) and calls `invoke` with real
 * `DynamoDBStreamEvent` batches, with the ordering, filtering and retry semantics Lambda has.
 *
 * What it mirrors:
 * - The record shape Lambda delivers: `eventID`, `eventName`, `eventVersion`, `eventSource`,
 *   `awsRegion` (from `options.region`; DynamoDB Local says 'ddblocal'), `dynamodb` with attribute
 *   values in AttributeValue JSON (B/BS as base64 strings, `ApproximateCreationDateTime` in epoch
 *   seconds), `eventSourceARN` (the stream ARN as given) and, for TTL deletes, `userIdentity`.
 *   DynamoDB Local names a TTL delete 'UNKNOWN_TO_SDK_VERSION' and gives it no identity; it is
 *   delivered as AWS does: `REMOVE` with
 *   `userIdentity: { type: 'Service', principalId: 'dynamodb.amazonaws.com' }`.
 * - Per shard: in order, one invocation at a time; parent shards are finished before their children
 *   (closed shards are followed to their children); different shards run concurrently.
 * - `startingPosition` TRIM_HORIZON / LATEST, `batchSize`, `maximumBatchingWindowMs`, and the 6 MB
 *   invocation payload limit (measured as the JSON size of the records).
 * - Filter criteria, matched by `event-pattern.ts` against the Lambda-shaped record: a record is
 *   delivered if any filter matches; dropped records are never delivered, never retried and never
 *   count toward `batchSize`. An invalid pattern throws from `startStreamPoller`, as Lambda rejects
 *   the mapping.
 * - Failures: a rejected `invoke` fails the whole batch, which is retried (after `retryDelayMs`,
 *   doubling up to 10 s). With `reportBatchItemFailures`, `{ batchItemFailures: [{ itemIdentifier }] }`
 *   checkpoints before the lowest failed sequence number and retries from there (later records are
 *   delivered again); an empty/null/unknown `itemIdentifier` fails the whole batch. After
 *   `maximumRetryAttempts` retries the failing records go to `onDiscard` and processing continues.
 *   A later record is never delivered before an earlier failed one succeeded or was discarded.
 * - Events are deep copies per invocation (Lambda serializes), so a handler's mutations don't leak
 *   into retries.
 *
 * What it does not mirror:
 * - No persistent checkpoints or leases: state is in memory; a new poller starts from
 *   `startingPosition` again. Run one poller per stream.
 * - `bisectBatchOnFunctionError` is not implemented: passing `true` throws at start.
 * - No `MaximumRecordAgeInSeconds`, `TumblingWindowInSeconds`, `ParallelizationFactor` > 1, on-failure
 *   destinations (use `onDiscard`), function timeouts, throttling, concurrency limits or metrics.
 * - Lambda's own retry backoff is unspecified; this one is `retryDelayMs` doubling up to 10 s.
 * - Filters: any top-level key may be filtered on (Lambda documents only `dynamodb`), and there is
 *   no limit on the number of filters. DynamoDB `N` values are strings in the record, so `numeric`
 *   never matches them: match those with exact strings or `prefix`.
 * - LATEST means "from when the poller got its first iterator", which happens shortly after
 *   `startStreamPoller` returns (await `drained()` to be sure), not from when the mapping was created.
 * - `stop()` aborts in-flight Streams API calls and clears its timers; the client is the caller's to
 *   `destroy()`. Don't await `stop()` inside `invoke` (it waits for that very invocation).
 * - `drained()` is a test aid with no Lambda counterpart: it resolves once every shard has been
 *   read to its end (an empty GetRecords started after the call) and every record read was
 *   delivered, filtered out or discarded. It never resolves while a batch keeps failing.
 */
import {
  DescribeStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type AttributeValue as SdkAttributeValue,
  type DynamoDBStreamsClient,
  type GetRecordsCommandOutput,
  type Shard,
  type ShardIteratorType,
  type _Record,
} from '@aws-sdk/client-dynamodb-streams';
import type { AttributeValue, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import { matchesFilter, parseFilterPattern } from './event-pattern.ts';

export interface StreamPollerOptions {
  client: DynamoDBStreamsClient;
  streamArn: string;
  /** eventSourceARN/awsRegion in records; default 'us-east-1' */
  region?: string;
  /** default 100, max records per invocation (1..10000) */
  batchSize?: number;
  /** default 0 (0..300000) */
  maximumBatchingWindowMs?: number;
  /** default 'TRIM_HORIZON' */
  startingPosition?: 'TRIM_HORIZON' | 'LATEST';
  /** Lambda filter syntax; a record passes if ANY filter matches */
  filterCriteria?: { Filters: Array<{ Pattern: string }> };
  /** FunctionResponseTypes: ['ReportBatchItemFailures'] */
  reportBatchItemFailures?: boolean;
  /** default -1 (infinite, like Lambda); on exhaustion call onDiscard and move on */
  maximumRetryAttempts?: number;
  /** not implemented: `true` throws at start */
  bisectBatchOnFunctionError?: boolean;
  /** default 100 (idle polling) */
  pollIntervalMs?: number;
  /** delay before retrying a failed batch, default 500, doubling up to `maxRetryDelayMs` */
  retryDelayMs?: number;
  /** the longest delay between retries, default 10 s */
  maxRetryDelayMs?: number;
  invoke: (event: DynamoDBStreamEvent) => Promise<unknown>;
  /**
   * Failed invocations (attempt = 1 for the first failure of a batch, 2 for its first retry, ...)
   * and Streams API errors (attempt = consecutive failures), except a first
   * `TrimmedDataAccessException` before anything was read from a shard, which DynamoDB Local
   * answers now and then on a fresh stream and the retry gets past. Default: console.warn.
   */
  onError?: (error: unknown, attempt: number) => void;
  onDiscard?: (records: DynamoDBStreamEvent['Records']) => void;
}

export interface StreamPoller {
  /** finishes the in-flight invocation, then stops; no timers left */
  stop(): Promise<void>;
  /** resolves when every record written so far has been delivered (or filtered out) — handy for tests */
  drained(): Promise<void>;
}

/* ------------------------------------------------------------------------------------------------ */
/* Record conversion                                                                                 */
/* ------------------------------------------------------------------------------------------------ */

function base64(bytes: Uint8Array | string): string {
  return typeof bytes === 'string'
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** SDK AttributeValue (Uint8Array binaries) → the AttributeValue JSON Lambda delivers. */
export function toLambdaAttributeValue(value: SdkAttributeValue): AttributeValue {
  const v = value as unknown as Record<string, unknown>;
  if (v.S !== undefined) return { S: v.S as string };
  if (v.N !== undefined) return { N: v.N as string };
  if (v.B !== undefined) return { B: base64(v.B as Uint8Array) };
  if (v.BOOL !== undefined) return { BOOL: v.BOOL as boolean };
  if (v.NULL !== undefined) return { NULL: v.NULL as boolean };
  if (v.SS !== undefined) return { SS: [...(v.SS as string[])] };
  if (v.NS !== undefined) return { NS: [...(v.NS as string[])] };
  if (v.BS !== undefined) return { BS: (v.BS as Uint8Array[]).map(base64) };
  if (v.L !== undefined) return { L: (v.L as SdkAttributeValue[]).map(toLambdaAttributeValue) };
  if (v.M !== undefined) return { M: toLambdaImage(v.M as Record<string, SdkAttributeValue>) };
  throw new Error(`unsupported attribute value ${JSON.stringify(Object.keys(v))}`);
}

function toLambdaImage(image: Record<string, SdkAttributeValue>): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const [name, value] of Object.entries(image)) out[name] = toLambdaAttributeValue(value);
  return out;
}

const TTL_IDENTITY = { type: 'Service', principalId: 'dynamodb.amazonaws.com' };

/** A GetRecords record → the record Lambda puts in `DynamoDBStreamEvent.Records`. */
export function toLambdaRecord(record: _Record, streamArn: string, region: string): DynamoDBRecord {
  const source = record.dynamodb ?? {};
  const known =
    record.eventName === 'INSERT' || record.eventName === 'MODIFY' || record.eventName === 'REMOVE';
  const dynamodb: NonNullable<DynamoDBRecord['dynamodb']> = {};
  if (source.ApproximateCreationDateTime !== undefined) {
    const at = source.ApproximateCreationDateTime as Date | number | string;
    dynamodb.ApproximateCreationDateTime = at instanceof Date ? at.getTime() / 1000 : Number(at);
  }
  if (source.Keys) dynamodb.Keys = toLambdaImage(source.Keys);
  if (source.NewImage) dynamodb.NewImage = toLambdaImage(source.NewImage);
  if (source.OldImage) dynamodb.OldImage = toLambdaImage(source.OldImage);
  if (source.SequenceNumber !== undefined) dynamodb.SequenceNumber = source.SequenceNumber;
  if (source.SizeBytes !== undefined) dynamodb.SizeBytes = source.SizeBytes;
  if (source.StreamViewType !== undefined) dynamodb.StreamViewType = source.StreamViewType;
  const out: DynamoDBRecord = {
    eventID: record.eventID,
    // Only TTL deletes come with another name (DynamoDB Local: 'UNKNOWN_TO_SDK_VERSION'); AWS says REMOVE.
    eventName: known ? (record.eventName as 'INSERT' | 'MODIFY' | 'REMOVE') : 'REMOVE',
    eventVersion: record.eventVersion ?? '1.1',
    eventSource: 'aws:dynamodb',
    awsRegion: region,
    dynamodb,
    eventSourceARN: streamArn,
  };
  if (record.userIdentity) {
    out.userIdentity = { type: record.userIdentity.Type, principalId: record.userIdentity.PrincipalId };
  } else if (!known) {
    out.userIdentity = { ...TTL_IDENTITY };
  }
  return out;
}

/* ------------------------------------------------------------------------------------------------ */
/* The poller                                                                                        */
/* ------------------------------------------------------------------------------------------------ */

const MAX_RETRY_DELAY_MS = 10_000;
const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** drained() only trusts empty reads started this long after it was called (stream visibility lag). */
const DRAIN_SETTLE_MS = 25;

interface Buffered {
  readonly record: DynamoDBRecord;
  readonly sequence: bigint;
  readonly sequenceNumber: string;
  readonly matches: boolean;
  readonly bytes: number;
  readonly bufferedAt: number;
}

interface ShardWorker {
  readonly shardId: string;
  initialPosition: 'TRIM_HORIZON' | 'LATEST';
  readonly buffer: Buffered[];
  /** undefined: acquire one; null: the shard is closed and everything in it has been read */
  iterator: string | null | undefined;
  /** last sequence number read from the shard (buffered or processed) */
  lastRead: string | undefined;
  /** start time of the latest GetRecords that found nothing new while nothing was pending */
  caughtUpAt: number | undefined;
  invoking: boolean;
  done: boolean;
  retry: { sequence: bigint; attempts: number } | undefined;
  apiFailures: number;
}

interface DrainWaiter {
  readonly since: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

function intInRange(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorName(error: unknown): string {
  if (error instanceof Error) return error.name;
  return isPlainObject(error) && typeof error.name === 'string' ? error.name : '';
}

type Outcome = { kind: 'ok' } | { kind: 'failed'; from: number; error: unknown };

/** Lambda's reading of a handler result when ReportBatchItemFailures is on. */
function readBatchResponse(result: unknown, batch: readonly Buffered[]): Outcome {
  if (result === null || typeof result !== 'object') return { kind: 'ok' };
  const failures = (result as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return { kind: 'ok' };
  if (!Array.isArray(failures)) {
    return {
      kind: 'failed',
      from: 0,
      error: new Error('batchItemFailures is not a list: whole batch failed'),
    };
  }
  if (failures.length === 0) return { kind: 'ok' };
  let from = Infinity;
  for (const failure of failures as unknown[]) {
    const id = isPlainObject(failure) ? failure.itemIdentifier : undefined;
    const index = typeof id === 'string' && id !== '' ? batch.findIndex((b) => b.sequenceNumber === id) : -1;
    if (index < 0) {
      return {
        kind: 'failed',
        from: 0,
        error: new Error(`invalid itemIdentifier ${JSON.stringify(id)}: whole batch failed`),
      };
    }
    from = Math.min(from, index);
  }
  return {
    kind: 'failed',
    from,
    error: new Error(`batchItemFailures from sequence number ${batch[from]?.sequenceNumber ?? '?'}`),
  };
}

export function startStreamPoller(options: StreamPollerOptions): StreamPoller {
  const { client, streamArn, invoke } = options;
  const region = options.region ?? 'us-east-1';
  const batchSize = intInRange('batchSize', options.batchSize ?? 100, 1, 10_000);
  const windowMs = intInRange('maximumBatchingWindowMs', options.maximumBatchingWindowMs ?? 0, 0, 300_000);
  const startingPosition = options.startingPosition ?? 'TRIM_HORIZON';
  if (startingPosition !== 'TRIM_HORIZON' && startingPosition !== 'LATEST') {
    throw new Error(`startingPosition must be TRIM_HORIZON or LATEST, got ${String(startingPosition)}`);
  }
  const maxRetries = intInRange('maximumRetryAttempts', options.maximumRetryAttempts ?? -1, -1, 10_000);
  const pollIntervalMs = intInRange('pollIntervalMs', options.pollIntervalMs ?? 100, 1, 3_600_000);
  const retryDelayMs = intInRange('retryDelayMs', options.retryDelayMs ?? 500, 0, 3_600_000);
  const maxRetryDelayMs = intInRange(
    'maxRetryDelayMs',
    options.maxRetryDelayMs ?? MAX_RETRY_DELAY_MS,
    0,
    3_600_000,
  );
  if (options.bisectBatchOnFunctionError) throw new Error('bisectBatchOnFunctionError is not supported');
  const reportFailures = options.reportBatchItemFailures === true;
  const filters = (options.filterCriteria?.Filters ?? []).map((filter) => parseFilterPattern(filter.Pattern));
  const onError =
    options.onError ??
    ((error: unknown, attempt: number) =>
      console.warn(`[stream-poller] ${streamArn} (attempt ${attempt}):`, error));
  const onDiscard = options.onDiscard ?? (() => {});

  let stopped = false;
  const abort = new AbortController();
  const timers = new Map<NodeJS.Timeout, () => void>();
  const workers = new Map<string, ShardWorker>();
  const running = new Set<Promise<void>>();
  const waiters = new Set<DrainWaiter>();
  /** true until the first DescribeStream, and while a closed shard's children are still to be started */
  let discovering = true;
  let wakeCoordinator: (() => void) | undefined;

  /** A sleep that stop() cuts short. */
  function sleep(ms: number): Promise<void> {
    if (stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.set(timer, resolve);
    });
  }

  function backoff(attempt: number): number {
    return Math.min(retryDelayMs * 2 ** Math.max(0, attempt - 1), maxRetryDelayMs);
  }

  function report(error: unknown, attempt: number): void {
    try {
      onError(error, attempt);
    } catch {
      // a throwing onError must not kill the poller
    }
  }

  function checkDrained(): void {
    if (waiters.size === 0 || discovering || workers.size === 0) return;
    for (const waiter of waiters) {
      const ok = [...workers.values()].every(
        (w) =>
          w.done ||
          (!w.invoking &&
            w.buffer.length === 0 &&
            w.caughtUpAt !== undefined &&
            w.caughtUpAt >= waiter.since),
      );
      if (ok) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  const aborting = { abortSignal: abort.signal };

  /* ---------------- reading ---------------- */

  async function acquireIterator(w: ShardWorker): Promise<void> {
    const type: ShardIteratorType = w.lastRead ? 'AFTER_SEQUENCE_NUMBER' : w.initialPosition;
    try {
      const response = await client.send(
        new GetShardIteratorCommand({
          StreamArn: streamArn,
          ShardId: w.shardId,
          ShardIteratorType: type,
          SequenceNumber: w.lastRead,
        }),
        aborting,
      );
      // No iterator for a shard means there is nothing left to read in it.
      w.iterator = response.ShardIterator ?? null;
    } catch (error) {
      const name = errorName(error);
      if (name === 'TrimmedDataAccessException' && w.lastRead) {
        // Our position aged out of the 24 h window: those records are gone; go on from the oldest.
        report(error, 1);
        w.lastRead = undefined;
        w.iterator = undefined;
        w.initialPosition = 'TRIM_HORIZON';
        return;
      }
      if (name === 'ResourceNotFoundException') {
        // The shard itself was trimmed away: nothing to read, move on to its children.
        report(error, 1);
        w.iterator = null;
        return;
      }
      throw error;
    }
  }

  /** One GetRecords (acquiring an iterator first if needed). Returns how many new records were buffered. */
  async function readOnce(w: ShardWorker): Promise<number> {
    if (w.iterator === undefined) await acquireIterator(w);
    if (w.iterator === undefined || w.iterator === null) return 0;
    const startedAt = Date.now();
    let response: GetRecordsCommandOutput;
    try {
      response = await client.send(new GetRecordsCommand({ ShardIterator: w.iterator }), aborting);
    } catch (error) {
      // Expired, trimmed, invalid or lost: re-acquire from what we have read (never skips, never repeats).
      w.iterator = undefined;
      if (errorName(error) === 'ExpiredIteratorException') return 0;
      throw error;
    }
    let added = 0;
    const last = w.lastRead === undefined ? -1n : BigInt(w.lastRead);
    for (const raw of response.Records ?? []) {
      const sequenceNumber = raw.dynamodb?.SequenceNumber;
      if (sequenceNumber === undefined || BigInt(sequenceNumber) <= last) continue;
      const record = toLambdaRecord(raw, streamArn, region);
      w.buffer.push({
        record,
        sequence: BigInt(sequenceNumber),
        sequenceNumber,
        matches: filters.length === 0 || filters.some((pattern) => matchesFilter(pattern, record)),
        bytes: Buffer.byteLength(JSON.stringify(record)),
        bufferedAt: Date.now(),
      });
      w.lastRead = sequenceNumber;
      added += 1;
    }
    w.iterator = response.NextShardIterator ?? null;
    w.caughtUpAt = added === 0 && w.buffer.length === 0 ? startedAt : undefined;
    return added;
  }

  /* ---------------- delivering ---------------- */

  function dropLeadingFiltered(w: ShardWorker): void {
    let n = 0;
    while (n < w.buffer.length && !w.buffer[n]!.matches) n += 1;
    if (n > 0) w.buffer.splice(0, n);
  }

  /** The next batch: up to batchSize matching records (and the 6 MB payload), plus its span in the buffer. */
  function nextBatch(w: ShardWorker): { batch: Buffered[]; span: number; full: boolean } {
    const batch: Buffered[] = [];
    let bytes = 0;
    let span = 0;
    let full = false;
    for (const [index, entry] of w.buffer.entries()) {
      if (!entry.matches) continue;
      if (batch.length === batchSize || (batch.length > 0 && bytes + entry.bytes > MAX_PAYLOAD_BYTES)) {
        full = true;
        break;
      }
      batch.push(entry);
      bytes += entry.bytes;
      // Filtered-out records after the last delivered one stay for the next round.
      span = index + 1;
    }
    return { batch, span, full: full || batch.length === batchSize };
  }

  async function deliver(w: ShardWorker, batch: Buffered[], span: number): Promise<void> {
    const event: DynamoDBStreamEvent = { Records: structuredClone(batch.map((b) => b.record)) };
    let outcome: Outcome;
    w.invoking = true;
    try {
      const result = await invoke(event);
      outcome = reportFailures ? readBatchResponse(result, batch) : { kind: 'ok' };
    } catch (error) {
      outcome = { kind: 'failed', from: 0, error };
    } finally {
      w.invoking = false;
    }

    if (outcome.kind === 'ok') {
      w.buffer.splice(0, span);
      w.retry = undefined;
      return;
    }

    // Checkpoint just before the lowest failed record: everything earlier is done.
    const failed = batch[outcome.from]!;
    w.buffer.splice(0, w.buffer.indexOf(failed));
    const attempts = w.retry?.sequence === failed.sequence ? w.retry.attempts + 1 : 1;
    report(outcome.error, attempts);
    if (maxRetries >= 0 && attempts > maxRetries) {
      const discarded = batch.slice(outcome.from);
      const lastDiscarded = discarded[discarded.length - 1]!;
      w.buffer.splice(0, w.buffer.indexOf(lastDiscarded) + 1);
      w.retry = undefined;
      try {
        onDiscard(structuredClone(discarded.map((b) => b.record)));
      } catch (error) {
        report(error, attempts);
      }
      return;
    }
    w.retry = { sequence: failed.sequence, attempts };
    await sleep(backoff(attempts));
  }

  /* ---------------- per-shard loop ---------------- */

  async function runShard(w: ShardWorker): Promise<void> {
    while (!stopped) {
      try {
        dropLeadingFiltered(w);
        if (w.buffer.length > 0) {
          const { batch, span, full } = nextBatch(w);
          const first = batch[0]!;
          const windowEnds = first.bufferedAt + windowMs;
          const waitForMore =
            windowMs > 0 && !full && w.retry === undefined && w.iterator !== null && Date.now() < windowEnds;
          if (!waitForMore) {
            await deliver(w, batch, span);
            checkDrained();
            continue;
          }
          const added = await readOnce(w);
          w.apiFailures = 0;
          if (added === 0) await sleep(Math.min(pollIntervalMs, Math.max(1, windowEnds - Date.now())));
          continue;
        }
        if (w.iterator === null) {
          // Closed and fully processed: hand over to its children.
          w.done = true;
          discovering = true;
          wakeCoordinator?.();
          return;
        }
        const added = await readOnce(w);
        w.apiFailures = 0;
        checkDrained();
        if (added === 0 && w.iterator !== null && w.iterator !== undefined) await sleep(pollIntervalMs);
      } catch (error) {
        if (stopped) return;
        w.apiFailures += 1;
        // DynamoDB Local sometimes refuses the first read of a fresh stream this way; the retry, from
        // the same starting position, reads everything. Reported only if it happens again.
        const freshStreamHiccup =
          w.apiFailures === 1 &&
          w.lastRead === undefined &&
          errorName(error) === 'TrimmedDataAccessException';
        if (!freshStreamHiccup) report(error, w.apiFailures);
        await sleep(backoff(w.apiFailures));
      }
    }
  }

  function startWorker(shardId: string, initialPosition: 'TRIM_HORIZON' | 'LATEST', skip: boolean): void {
    const w: ShardWorker = {
      shardId,
      initialPosition,
      buffer: [],
      iterator: undefined,
      lastRead: undefined,
      caughtUpAt: undefined,
      invoking: false,
      done: skip,
      retry: undefined,
      apiFailures: 0,
    };
    workers.set(shardId, w);
    if (skip) return;
    const run: Promise<void> = runShard(w).finally(() => running.delete(run));
    running.add(run);
  }

  /* ---------------- shard discovery ---------------- */

  async function describeShards(): Promise<{ shards: Shard[]; status: string | undefined }> {
    const shards: Shard[] = [];
    let status: string | undefined;
    let exclusiveStart: string | undefined;
    do {
      const { StreamDescription: d } = await client.send(
        new DescribeStreamCommand({ StreamArn: streamArn, ExclusiveStartShardId: exclusiveStart }),
        aborting,
      );
      shards.push(...(d?.Shards ?? []));
      status = d?.StreamStatus ?? status;
      exclusiveStart = d?.LastEvaluatedShardId;
    } while (exclusiveStart);
    return { shards, status };
  }

  /** Starts every shard whose parent is finished (or no longer listed). */
  function startEligible(shards: Shard[], initial: boolean): void {
    const listed = new Set(shards.map((s) => s.ShardId));
    let progress = true;
    while (progress) {
      progress = false;
      for (const shard of shards) {
        const id = shard.ShardId;
        if (!id || workers.has(id)) continue;
        const parent = shard.ParentShardId;
        const parentDone =
          !parent || workers.get(parent)?.done === true || (!listed.has(parent) && !workers.has(parent));
        if (!parentDone) continue;
        if (initial && startingPosition === 'LATEST') {
          const closed = shard.SequenceNumberRange?.EndingSequenceNumber !== undefined;
          startWorker(id, 'LATEST', closed);
        } else {
          startWorker(id, 'TRIM_HORIZON', false);
        }
        progress = true;
      }
    }
  }

  async function coordinate(): Promise<void> {
    let initial = true;
    let failures = 0;
    while (!stopped) {
      let needsAnotherLook: boolean;
      try {
        const { shards, status } = await describeShards();
        failures = 0;
        startEligible(shards, initial);
        initial = false;
        // Finished shards that aged out of the stream (24 h) need no more thought.
        const listed = new Set(shards.map((s) => s.ShardId));
        for (const [id, w] of workers) if (w.done && !listed.has(id)) workers.delete(id);
        // A finished shard without a started child: its children may not be listed yet.
        const childless = [...workers.values()].some(
          (w) => w.done && !shards.some((s) => s.ParentShardId === w.shardId && workers.has(s.ShardId ?? '')),
        );
        const enabled = status === undefined || status === 'ENABLED' || status === 'ENABLING';
        needsAnotherLook = (childless && enabled) || workers.size === 0;
        discovering = needsAnotherLook;
        checkDrained();
      } catch (error) {
        if (stopped) return;
        failures += 1;
        report(error, failures);
        await sleep(backoff(failures));
        continue;
      }
      if (needsAnotherLook) {
        await sleep(pollIntervalMs);
        continue;
      }
      // Wait until a shard finishes (its children become eligible) or we stop.
      await new Promise<void>((resolve) => {
        if (stopped || discovering) return resolve();
        wakeCoordinator = resolve;
      });
      wakeCoordinator = undefined;
    }
  }

  const coordinator: Promise<void> = coordinate();
  running.add(coordinator);
  void coordinator.finally(() => running.delete(coordinator));

  let stopping: Promise<void> | undefined;
  return {
    stop() {
      stopping ??= (async () => {
        stopped = true;
        abort.abort();
        wakeCoordinator?.();
        for (const [timer, resolve] of timers) {
          clearTimeout(timer);
          resolve();
        }
        timers.clear();
        while (running.size > 0) await Promise.allSettled([...running]);
        for (const waiter of waiters) waiter.reject(new Error('stream poller stopped before it drained'));
        waiters.clear();
      })();
      return stopping;
    },
    drained() {
      if (stopped) return Promise.reject(new Error('stream poller is stopped'));
      return new Promise<void>((resolve, reject) => {
        waiters.add({ since: Date.now() + DRAIN_SETTLE_MS, resolve, reject });
        checkDrained();
      });
    },
  };
}
