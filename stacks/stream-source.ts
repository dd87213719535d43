import { Duration, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { FilterCriteria, StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/**
 * How every function here reads a table's stream: from the oldest record, in order (one batch per
 * shard at a time), partial batch failures, retried without a count for as long as the stream keeps
 * the record (24 h; `MAX_RECORD_AGE` stops an hour short, so that a record is described on the SQS
 * queue, which the stack alarms on, instead of trimmed unseen). An outage of NATS, Step Functions or
 * DynamoDB therefore holds records in place, in order, and they flow when it ends; the iterator-age
 * alarm pages long before the hour. Only the records `filter` selects arrive.
 */
/** DynamoDB Streams keeps a record 24 h: give up an hour before, where the give-up is seen. */
export const MAX_RECORD_AGE = Duration.hours(23);

/** The age of the oldest unread record at which a person is paged (long before MAX_RECORD_AGE). */
export const ITERATOR_AGE_ALARM = Duration.minutes(5);

export function tableStreamSource(
  table: ITable,
  options: { filter: Record<string, unknown>; onFailure: Queue; batchSize?: number },
): DynamoEventSource {
  return new DynamoEventSource(table, {
    startingPosition: StartingPosition.TRIM_HORIZON,
    batchSize: options.batchSize ?? 100,
    maxBatchingWindow: Duration.millis(0),
    reportBatchItemFailures: true,
    bisectBatchOnError: false,
    retryAttempts: -1,
    maxRecordAge: MAX_RECORD_AGE,
    parallelizationFactor: 1,
    onFailure: new SqsDlq(options.onFailure),
    filters: [FilterCriteria.filter(options.filter)],
  });
}

/** The queue that receives what a stream reader gave up on: kept 14 days, encrypted, TLS only. */
export function streamFailureQueue(scope: Construct, id: string): Queue {
  const queue = new Queue(scope, id, {
    retentionPeriod: Duration.days(14),
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
  });
  const reason =
    'This queue is itself the dead letters of a stream mapping; nothing consumes it, so nothing can fail and redrive from it. Its depth alarms';
  Validations.of(queue).acknowledge({ id: 'AwsSolutions-SQS3', reason });
  Validations.of(queue).acknowledge({ id: 'Serverless-SQSRedrivePolicy', reason });
  return queue;
}
