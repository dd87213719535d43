import type { Context, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';
import type { EventPublisher } from '../../shared/nats.ts';
import { MalformedOutboxItemError, storedEventOfRecord, type StoredEvent } from '../../shared/outbox/read.ts';
import { orderedStreamRunner } from '../../shared/stream-runner.ts';

/*
 * The bridge: outbox records from the tables' streams → NATS JetStream, exactly as they were
 * committed. Every record's publish waits for its PubAck; one aggregate's records go one after
 * another (the ordered stream runner), different aggregates' at once, so many publishes are in
 * flight on the one connection. A record that fails holds back only its own aggregate's later
 * records; Lambda retries from the earliest failure, and what had been published after it again is
 * dropped by JetStream's duplicate window (Nats-Msg-Id = event id) or, while this instance lives,
 * not even sent (it remembers the ids it has had acknowledged).
 */

export interface BridgeOptions {
  /** Opens a new connection (called at the first batch, and whenever the last one is found dead). */
  connect: () => Promise<EventPublisher>;
  /**
   * The round trip that checks a kept connection at the start of an invocation: a connection that
   * died while Lambda was frozen is found here, at once, not by a publish waiting out its PubAck.
   */
  aliveTimeoutMs?: number;
  /** Stop starting publishes when less than this much of the invocation remains (default 5 s). */
  reserveMs?: number;
  onError: (error: unknown, record: DynamoDBRecord) => void;
  /** A record that can never be published (no outbox event in it): skipped, and said loudly here. */
  onUnpublishable: (error: MalformedOutboxItemError, record: DynamoDBRecord) => void;
  onNotReached?: (records: DynamoDBRecord[]) => void;
  /** JetStream stored the record's event (not called for a duplicate PubAck: it was stored already). */
  onPublished?: (record: DynamoDBRecord, event: StoredEvent) => void;
  /** A connection was replaced; `why` says what was wrong with it. */
  onReconnect?: (why: string) => void;
}

/** Ids this instance has had acknowledged, newest last; bounded. */
class RecentIds {
  readonly #ids = new Set<string>();
  readonly #limit: number;
  constructor(limit: number) {
    this.#limit = limit;
  }
  has(id: string): boolean {
    return this.#ids.has(id);
  }
  add(id: string): void {
    this.#ids.add(id);
    if (this.#ids.size > this.#limit) this.#ids.delete(this.#ids.values().next().value!);
  }
}

/**
 * The batch with each aggregate's records in `sequence` order, in the places its records held. Two
 * events of one transaction are two items, and DynamoDB Streams documents order per item only: their
 * records may arrive either way round. Records without a sequence (written before sequences) keep
 * their stream order.
 */
export function inSequencePerAggregate(records: DynamoDBRecord[]): DynamoDBRecord[] {
  const sequenceOf = (record: DynamoDBRecord) => Number(record.dynamodb?.NewImage?.sequence?.N ?? NaN);
  const slots = new Map<string, number[]>();
  records.forEach((record, index) => {
    const key = record.dynamodb?.Keys?.pk?.S ?? '';
    slots.set(key, [...(slots.get(key) ?? []), index]);
  });
  const ordered = [...records];
  for (const indexes of slots.values()) {
    const own = indexes.map((index) => records[index]!);
    if (own.length < 2 || own.some((record) => Number.isNaN(sequenceOf(record)))) continue;
    own.sort((a, b) => sequenceOf(a) - sequenceOf(b));
    indexes.forEach((index, position) => (ordered[index] = own[position]!));
  }
  return ordered;
}

export function eventBridge(options: BridgeOptions) {
  const aliveTimeoutMs = options.aliveTimeoutMs ?? 1_000;
  let publisher: EventPublisher | undefined;
  const published = new RecentIds(10_000);

  /** A connection this invocation can use: the kept one if it answers, else a new one. */
  async function connection(): Promise<EventPublisher> {
    if (publisher && !publisher.isClosed() && (await publisher.isAlive(aliveTimeoutMs))) return publisher;
    if (publisher) {
      const dead = publisher;
      options.onReconnect?.(
        dead.isClosed() ? 'the connection was closed' : `no answer within ${aliveTimeoutMs} ms`,
      );
      publisher = undefined;
      void dead.close().catch(() => {}); // never wait on a dead connection
    }
    publisher = await options.connect();
    return publisher;
  }

  const publishRecord = (current: () => EventPublisher) => async (record: DynamoDBRecord) => {
    let event: StoredEvent;
    try {
      event = storedEventOfRecord(record);
    } catch (error) {
      if (!(error instanceof MalformedOutboxItemError)) throw error;
      options.onUnpublishable(error, record);
      return;
    }
    if (published.has(event.id)) return;
    const ack = await current().publish({ subject: event.type, id: event.id, body: event.body });
    published.add(event.id);
    // A duplicate PubAck: the stream had it already (another instance, an earlier attempt).
    if (!ack.duplicate) options.onPublished?.(record, event);
  };

  let active: EventPublisher | undefined;
  const run = orderedStreamRunner(
    publishRecord(() => active!),
    {
      onError: options.onError,
      ...(options.onNotReached ? { onNotReached: options.onNotReached } : {}),
      ...(options.reserveMs === undefined ? {} : { reserveMs: options.reserveMs }),
    },
  );

  return {
    async handle(event: DynamoDBStreamEvent, context?: Context): Promise<DynamoDBBatchResponse> {
      if (event.Records.length === 0) return { batchItemFailures: [] };
      try {
        active = await connection();
      } catch (error) {
        // NATS does not answer: every record keeps its place, and Lambda tries again.
        for (const record of event.Records.slice(0, 1)) options.onError(error, record);
        return {
          batchItemFailures: event.Records.map((record) => ({
            itemIdentifier: record.dynamodb?.SequenceNumber ?? '',
          })),
        };
      }
      return run({ Records: inSequencePerAggregate(event.Records) }, context);
    },
    async close(): Promise<void> {
      await publisher?.close();
      publisher = undefined;
    },
  };
}
