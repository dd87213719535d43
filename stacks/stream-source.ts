import { Duration } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { FilterCriteria, StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

/**
 * How every function here reads a table's stream: from the oldest record, in order (one batch per
 * shard at a time), partial batch failures, 100 retries within 24 h, then a description of the
 * records on an SQS queue (which the stack alarms on). Only the records `filter` selects arrive.
 */
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
    retryAttempts: 100,
    maxRecordAge: Duration.hours(24),
    parallelizationFactor: 1,
    onFailure: new SqsDlq(options.onFailure),
    filters: [FilterCriteria.filter(options.filter)],
  });
}

/** The queue that receives what a stream reader gave up on: kept 14 days, encrypted, TLS only. */
export function streamFailureQueue(scope: Construct, id: string): Queue {
  return new Queue(scope, id, {
    retentionPeriod: Duration.days(14),
    encryption: QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
  });
}
