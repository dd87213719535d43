import { Duration } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { FilterCriteria, StartingPosition } from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { outboxFilterPattern } from '../shared/outbox.ts';
import { ServiceFunction } from './service-function.ts';

export interface EventBridgeProps {
  tables: ITable[];
  /** Comma-separated NATS server URLs of the JetStream cluster. */
  natsUrl: string;
}

/**
 * Outbox → NATS: one bridge function reading every service table's stream, filtered to outbox
 * items, reporting partial batch failures. Batches that still fail after the retries are described
 * in a dead-letter queue (the events themselves stay in the tables for 7 days, for replay).
 */
export class EventBridge extends Construct {
  readonly function: ServiceFunction;
  readonly deadLetters: Queue;

  constructor(scope: Construct, id: string, props: EventBridgeProps) {
    super(scope, id);
    this.deadLetters = new Queue(this, 'DeadLetters', {
      retentionPeriod: Duration.days(14),
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.function = new ServiceFunction(this, 'PublishEvents', {
      entry: 'functions/bridge/publish-events.ts',
      service: 'bridge',
      description: 'DynamoDB Streams outbox → NATS JetStream',
      environment: { NATS_URL: props.natsUrl },
      timeout: Duration.seconds(60),
    });
    for (const table of props.tables) {
      this.function.function.addEventSource(
        new DynamoEventSource(table, {
          startingPosition: StartingPosition.TRIM_HORIZON,
          batchSize: 100,
          maxBatchingWindow: Duration.millis(0),
          reportBatchItemFailures: true,
          bisectBatchOnError: false,
          retryAttempts: 100,
          maxRecordAge: Duration.hours(24),
          parallelizationFactor: 1,
          onFailure: new SqsDlq(this.deadLetters),
          filters: [FilterCriteria.filter(outboxFilterPattern())],
        }),
      );
    }
  }
}
