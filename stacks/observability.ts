import { Duration, Stack, Validations } from 'aws-cdk-lib';
import { Alarm, MathExpression, Metric, type IMetric } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription, UrlSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct, type IConstruct } from 'constructs';
import { METRICS_NAMESPACE, type MetricName } from '../shared/metric-names.ts';
import { stageOf } from './stage.ts';

type Service = 'orders' | 'inventory' | 'payments' | 'bridge';

/** The namespace the stack's functions write their business metrics to (POWERTOOLS_METRICS_NAMESPACE). */
export const metricsNamespace = (scope: IConstruct) => `${METRICS_NAMESPACE}/${Stack.of(scope).stackName}`;

/**
 * A business metric as the handlers emit it (shared/metric-names.ts): Powertools writes every one
 * with the `service` dimension, and the total without any other; `dimensions` selects one line of
 * a breakdown (e.g. `reason`).
 */
export function businessMetric(
  scope: IConstruct,
  name: MetricName,
  service: Service,
  options: {
    statistic?: string;
    period?: Duration;
    label?: string;
    dimensions?: Record<string, string>;
  } = {},
): Metric {
  return new Metric({
    namespace: metricsNamespace(scope),
    metricName: name,
    dimensionsMap: { service, ...options.dimensions },
    statistic: options.statistic ?? 'Sum',
    period: options.period ?? Duration.minutes(5),
    ...(options.label ? { label: options.label } : {}),
  });
}

/**
 * One line per value of a breakdown dimension (`reason`, `outcome`, `result`), whatever values
 * occur: a CloudWatch search, for dashboards (alarms read the totals).
 */
export function breakdown(
  scope: IConstruct,
  name: MetricName,
  service: Service,
  dimension: string,
  statistic = 'Sum',
): IMetric {
  return new MathExpression({
    expression: `SEARCH('{${metricsNamespace(scope)},service,${dimension}} MetricName="${name}" service="${service}"', '${statistic}', 300)`,
    usingMetrics: {},
    label: '',
    period: Duration.minutes(5),
  });
}

export interface AlarmTopicProps {
  /** Addresses that get every alarm and its recovery by email (each confirms once). */
  emails: string[];
  /** HTTPS endpoints (a pager's SNS integration, a chat webhook) that get them as SNS notifications. */
  urls: string[];
}

/**
 * Where every alarm goes: one SNS topic, encrypted with a key of its own (CloudWatch cannot publish
 * to a topic under AWS's managed SNS key), TLS only, with the subscriptions the deploy names.
 */
export class AlarmTopic extends Construct {
  readonly topic: Topic;
  /** Notifications SNS gave up delivering; only with subscriptions. */
  readonly undelivered?: Queue;

  constructor(scope: Construct, id: string, props: AlarmTopicProps) {
    super(scope, id);
    const stage = stageOf(this);
    const key = new Key(this, 'Key', {
      description: `Encrypts the ${Stack.of(this).stackName} alarm topic`,
      enableKeyRotation: true,
      removalPolicy: stage.removalPolicy,
      ...(stage.ephemeral ? { pendingWindow: Duration.days(7) } : {}),
    });
    // As AWS documents it for alarms on an encrypted topic; the topic's policy below says whose.
    key.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    this.topic = new Topic(this, 'Topic', {
      displayName: `${Stack.of(this).stackName} alarms`,
      masterKey: key,
      enforceSSL: true,
    });
    // enforceSSL writes a topic policy of its own, which replaces SNS's default one (the account
    // may publish): without this statement no alarm could publish. This account's alarms only.
    const stack = Stack.of(this);
    this.topic.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        conditions: {
          ArnLike: {
            'aws:SourceArn': `arn:${stack.partition}:cloudwatch:${stack.region}:${stack.account}:alarm:*`,
          },
          StringEquals: { 'aws:SourceAccount': stack.account },
        },
      }),
    );
    if (props.emails.length + props.urls.length === 0) return;
    // A notification SNS could not deliver (a pager endpoint down) is kept, and alarms itself.
    this.undelivered = new Queue(this, 'Undelivered', {
      retentionPeriod: Duration.days(14),
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    const reason =
      'This queue is itself the dead letters of the alarm subscriptions; nothing consumes it, so nothing can fail and redrive from it';
    Validations.of(this.undelivered).acknowledge({ id: 'AwsSolutions-SQS3', reason });
    Validations.of(this.undelivered).acknowledge({ id: 'Serverless-SQSRedrivePolicy', reason });
    const deadLetterQueue = this.undelivered;
    for (const email of props.emails)
      this.topic.addSubscription(new EmailSubscription(email, { deadLetterQueue }));
    for (const url of props.urls) this.topic.addSubscription(new UrlSubscription(url, { deadLetterQueue }));
  }

  /** Sends every alarm under `scope`, and its return to OK, to the topic. */
  pageOnEveryAlarm(scope: IConstruct): Alarm[] {
    const alarms = scope.node.findAll().filter((child): child is Alarm => child instanceof Alarm);
    const action = new SnsAction(this.topic);
    for (const alarm of alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
    return alarms;
  }
}
