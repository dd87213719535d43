import { Duration } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import {
  Alarm,
  ComparisonOperator,
  MathExpression,
  TreatMissingData,
  type IMetric,
} from 'aws-cdk-lib/aws-cloudwatch';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { Metric as Name } from '../shared/metric-names.ts';
import { businessMetric } from './observability.ts';
import { ITERATOR_AGE_ALARM, MAX_RECORD_AGE } from './stream-source.ts';

/** Share of the placed orders that compensated, in percent, above which someone should look. */
export const COMPENSATION_RATE_ALARM_PERCENT = 25;
/** The fewest orders in the window for the rate to mean anything. */
export const COMPENSATION_RATE_MIN_ORDERS = 20;
/** Throttled invocations of the saga's functions in 5 minutes worth a page. */
export const THROTTLES_ALARM = 10;
/** 5xx answers of the API in 5 minutes worth a page. */
export const API_5XX_ALARM = 5;

export interface SagaAlarmsProps {
  stateMachine: StateMachine;
  api: HttpApi;
  /** Stream readers: each alarms when its oldest record waits ITERATOR_AGE_ALARM. */
  readers: Record<string, { reader: IFunction; what: string }>;
  /** Dead-letter queues: each alarms on its first message. */
  deadLetters: Record<string, { queue: IQueue; what: string }>;
  /** The functions whose throttling delays sagas: the tasks and the webhook (at most 9). */
  throttled: IFunction[];
}

/**
 * Every alarm of the stack, each saying what it means and what to do (docs/operations.md has the
 * runbook for each, under its name). The stack sends them all to its alarm topic.
 */
export class SagaAlarms extends Construct {
  constructor(scope: Construct, id: string, props: SagaAlarmsProps) {
    super(scope, id);
    const alarm = (
      name: string,
      description: string,
      metric: IMetric,
      threshold: number,
      options: { evaluationPeriods?: number } = {},
    ) =>
      new Alarm(this, name, {
        alarmDescription: `${description} (docs/operations.md#${name.toLowerCase()})`,
        metric,
        threshold,
        evaluationPeriods: options.evaluationPeriods ?? 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });

    alarm(
      'SagaExecutionsFailed',
      'An order saga failed: a step kept failing for hours (or met a state no retry changes) after money may have moved, or during compensation; fix the cause and redrive',
      props.stateMachine.metricFailed({ period: Duration.minutes(1) }),
      1,
    );
    for (const [name, { queue, what }] of Object.entries(props.deadLetters)) {
      alarm(name, what, queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }), 1);
    }
    // A stream reader retries a failing record until it is 23 h old, and Lambda restarts a shard
    // from its earliest failed record: a record that keeps failing holds its shard back. Page early.
    for (const [name, { reader, what }] of Object.entries(props.readers)) {
      alarm(
        name,
        `${what}. It has waited ${ITERATOR_AGE_ALARM.toMinutes()} min or more; at ${MAX_RECORD_AGE.toHours()} h it goes to the dead letters`,
        reader.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1) }),
        ITERATOR_AGE_ALARM.toMilliseconds(),
      );
    }

    alarm(
      'StripeWebhookFailing',
      'The Stripe webhook answered 500: an event is not applied yet (Stripe retries for up to 3 days), for example a refund Stripe refuses',
      businessMetric(this, Name.WebhookFailures, 'payments'),
      1,
    );
    alarm(
      'StrayChargesRefunded',
      "A PaymentIntent the order's payment does not own (a second intent, or another amount) took money and was refunded",
      businessMetric(this, Name.StrayChargesRefunded, 'payments'),
      1,
    );
    alarm(
      'RefundsFailed',
      'Stripe reported a refund failed (refund.failed): the money is back in the Stripe balance, not with the customer',
      businessMetric(this, Name.RefundsFailed, 'payments'),
      1,
    );

    // A customer's own cancel is not a saga going wrong: it is left out of the rate.
    const period = Duration.minutes(15);
    alarm(
      'CompensationRate',
      `${COMPENSATION_RATE_ALARM_PERCENT} % or more of the orders of 15 minutes (at least ${COMPENSATION_RATE_MIN_ORDERS}) were cancelled by their saga, customers' own cancels aside: declines, stock-outs or faults beyond the usual; the dashboard's reasons say which`,
      new MathExpression({
        expression: `IF(placed >= ${COMPENSATION_RATE_MIN_ORDERS}, 100 * (FILL(compensated, 0) - FILL(customers, 0)) / placed, 0)`,
        usingMetrics: {
          placed: businessMetric(this, Name.OrdersPlaced, 'orders', { period }),
          compensated: businessMetric(this, Name.OrdersCompensated, 'orders', { period }),
          customers: businessMetric(this, Name.OrdersCompensated, 'orders', {
            period,
            dimensions: { reason: 'CUSTOMER_CANCELLED' },
          }),
        },
        period,
        label: 'Compensated by the saga, % of placed',
      }),
      COMPENSATION_RATE_ALARM_PERCENT,
    );

    if (props.throttled.length > 9) throw new Error('an alarm expression takes at most 10 metrics');
    const throttles: Record<string, IMetric> = Object.fromEntries(
      props.throttled.map((fn, index) => [
        `f${index}`,
        fn.metricThrottles({ statistic: 'Sum', period: Duration.minutes(5) }),
      ]),
    );
    throttles.sfn = props.stateMachine.metricThrottled({ statistic: 'Sum', period: Duration.minutes(5) });
    alarm(
      'SagaThrottled',
      "The saga's tasks, the webhook or the state machine were throttled: their reserved concurrency (or the account's) is spent. Sagas are retried, so they run late; raise the reservation or find the flood",
      new MathExpression({
        // A series without a point (a task nobody called) would leave the sum without one: FILL.
        expression: Object.keys(throttles)
          .map((id) => `FILL(${id}, 0)`)
          .join(' + '),
        usingMetrics: throttles,
        period: Duration.minutes(5),
        label: 'Throttled invocations',
      }),
      THROTTLES_ALARM,
    );
    alarm(
      'Api5xx',
      'The HTTP API answered 5xx: a function failed or timed out, or could not be invoked; its log group has the line',
      props.api.metricServerError({ statistic: 'Sum', period: Duration.minutes(5) }),
      API_5XX_ALARM,
    );
  }
}
