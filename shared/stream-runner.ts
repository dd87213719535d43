import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, DynamoDBBatchResponse, DynamoDBRecord, DynamoDBStreamEvent } from 'aws-lambda';

/*
 * The one way a function here reads a table's stream. Records of one aggregate (one partition key)
 * run strictly one after another, in stream order; records of different aggregates run at once. A
 * record that fails holds back the later records of its own aggregate only: they are reported as
 * failures without being run, so Lambda retries them after it, in order, and the other aggregates'
 * records are not delayed by it. Lambda checkpoints before the earliest failed record; what ran
 * after it runs again on the retry, which every handler here tolerates (idempotent writes, publishes
 * deduplicated by id).
 *
 * Time is watched too: a record is not started once less than `reserveMs` of the invocation remains,
 * and is reported as not reached, so a slow batch makes progress instead of timing out with none.
 * Built on Powertools' BatchProcessor (parallel processing, partial batch responses).
 */

export interface StreamRunnerOptions {
  /** Logs a record's failure (not the records held back behind it). */
  onError: (error: unknown, record: DynamoDBRecord) => void;
  /** Reports the records a batch did not reach in time, once per batch. */
  onNotReached?: (records: DynamoDBRecord[]) => void;
  /** Records with equal keys keep their order; default: the record's partition key (`pk`). */
  orderKey?: (record: DynamoDBRecord) => string;
  /** Stop starting records when less than this much time is left (default 5 s). */
  reserveMs?: number;
}

/** Thrown for a record behind a failed one of the same aggregate: it did not run. */
class HeldBackError extends Error {
  constructor() {
    super('held back behind an earlier failed record of the same aggregate');
    this.name = 'HeldBackError';
  }
}

/** Thrown for a record the invocation had no time left for: it did not run. */
class NotReachedError extends Error {
  constructor() {
    super('not reached before the invocation ran out of time');
    this.name = 'NotReachedError';
  }
}

const partitionKeyOf = (record: DynamoDBRecord): string =>
  record.dynamodb?.Keys?.pk?.S ?? record.dynamodb?.SequenceNumber ?? '';

/** A context for callers without Lambda's (tests, scripts): time never runs out. */
const UNBOUNDED: Pick<Context, 'getRemainingTimeInMillis'> = {
  getRemainingTimeInMillis: () => Number.MAX_SAFE_INTEGER,
};

type Outcome = 'done' | 'failed' | 'held back' | 'not reached';

export function orderedStreamRunner(
  handle: (record: DynamoDBRecord) => Promise<void>,
  options: StreamRunnerOptions,
) {
  const orderKey = options.orderKey ?? partitionKeyOf;
  const reserveMs = options.reserveMs ?? 5_000;

  return async (event: DynamoDBStreamEvent, context?: Context): Promise<DynamoDBBatchResponse> => {
    const clock = context ?? UNBOUNDED;
    const notReached: DynamoDBRecord[] = [];

    const run = async (record: DynamoDBRecord): Promise<Outcome> => {
      if (clock.getRemainingTimeInMillis() < reserveMs) {
        notReached.push(record);
        return 'not reached';
      }
      try {
        await handle(record);
        return 'done';
      } catch (error) {
        options.onError(error, record);
        return 'failed';
      }
    };

    // Each aggregate's chain ends in the outcome of its latest record; a record runs only after its
    // predecessor was done. Chains never reject: an outcome says what happened.
    const chains = new Map<string, Promise<Outcome>>();
    const outcomeOf = new Map<DynamoDBRecord, Promise<Outcome>>();
    for (const record of event.Records) {
      const key = orderKey(record);
      const previous = chains.get(key) ?? Promise.resolve<Outcome>('done');
      const outcome = previous.then((before) => (before === 'done' ? run(record) : 'held back'));
      chains.set(key, outcome);
      outcomeOf.set(record, outcome);
    }

    const response = await processPartialResponse(
      event,
      async (record: DynamoDBRecord) => {
        const outcome = await outcomeOf.get(record)!;
        if (outcome === 'held back') throw new HeldBackError();
        if (outcome === 'not reached') throw new NotReachedError();
        if (outcome === 'failed') throw new Error('failed (logged)');
      },
      new BatchProcessor(EventType.DynamoDBStreams),
      { throwOnFullBatchFailure: false, processInParallel: true },
    );
    if (notReached.length > 0) options.onNotReached?.(notReached);
    return response;
  };
}
