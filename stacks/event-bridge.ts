import { Duration } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Queue } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { outboxFilterPattern } from '../shared/outbox/read.ts';
import { ServiceFunction } from './service-function.ts';
import { streamFailureQueue, tableStreamSource } from './stream-source.ts';

export interface EventBridgeProps {
  tables: ITable[];
  /** Comma-separated NATS server URLs of the JetStream cluster. */
  natsUrl: string;
  /**
   * A Secrets Manager secret with the bridge's NATS credentials and the cluster's CA, as JSON
   * `{"credentials"?, "user"?, "password"?, "tlsCa"?}` (docs/nats.md); without it the bridge
   * connects with neither (a NATS reachable only from inside the VPC, say).
   */
  natsSecretArn?: string;
  /** The customer-managed KMS key the NATS secret is encrypted with, when not AWS's own. */
  secretsKey?: IKey;
}

/**
 * Outbox → NATS: one bridge function reading every service table's stream, filtered to outbox
 * items, reporting partial batch failures, retrying until a record would age out of the stream. A
 * batch still failing then is described in a dead-letter queue; the events themselves stay in the
 * tables for 7 days, and `npm run events:replay` republishes them.
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
      invokedBy: 'stream',
      environment: { NATS_URL: props.natsUrl },
      timeout: Duration.seconds(60),
    });
    if (props.natsSecretArn)
      this.function.readSecret(
        Secret.fromSecretCompleteArn(this, 'NatsSecret', props.natsSecretArn),
        'NATS_SECRET_ARN',
        props.secretsKey,
      );
    for (const table of props.tables) {
      this.function.function.addEventSource(
        tableStreamSource(table, { filter: outboxFilterPattern(), onFailure: this.deadLetters }),
      );
    }
  }
}
