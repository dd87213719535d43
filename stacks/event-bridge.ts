import { Duration } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { outboxFilterPattern } from '../shared/outbox.ts';
import { ServiceFunction } from './service-function.ts';
import { streamFailureQueue, tableStreamSource } from './stream-source.ts';

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
    this.deadLetters = streamFailureQueue(this, 'DeadLetters');
    this.function = new ServiceFunction(this, 'PublishEvents', {
      entry: 'functions/bridge/publish-events.ts',
      service: 'bridge',
      description: 'DynamoDB Streams outbox → NATS JetStream',
      environment: { NATS_URL: props.natsUrl },
      timeout: Duration.seconds(60),
    });
    for (const table of props.tables) {
      this.function.function.addEventSource(
        tableStreamSource(table, { filter: outboxFilterPattern(), onFailure: this.deadLetters }),
      );
    }
  }
}
