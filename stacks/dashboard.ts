import { Duration, Stack } from 'aws-cdk-lib';
import type { HttpApi } from 'aws-cdk-lib/aws-apigatewayv2';
import {
  AlarmStatusWidget,
  Dashboard,
  GraphWidget,
  MathExpression,
  TextWidget,
  type Alarm,
  type IMetric,
} from 'aws-cdk-lib/aws-cloudwatch';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { Metric as Name } from '../shared/metric-names.ts';
import { breakdown, businessMetric } from './observability.ts';

export interface SagaDashboardProps {
  stateMachine: StateMachine;
  api: HttpApi;
  alarms: Alarm[];
  /** The saga's task functions and the webhook, by the name the dashboard shows. */
  functions: Record<string, IFunction>;
  /** Stream readers, by name: their iterator age. */
  readers: Record<string, IFunction>;
}

const percentiles = (metric: (statistic: string, label: string) => IMetric) => [
  metric('p50', 'p50'),
  metric('p90', 'p90'),
  metric('p99', 'p99'),
];

/**
 * The CloudWatch dashboard: the same business metrics as the local Grafana dashboard
 * (infra/grafana/), then the platform's own (executions, functions, API, stream readers), and every
 * alarm's state.
 */
export class SagaDashboard extends Construct {
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: SagaDashboardProps) {
    super(scope, id);
    const name = Stack.of(this).stackName;
    const orders = (metric: (typeof Name)[keyof typeof Name], label: string) =>
      businessMetric(this, metric, 'orders', { label });
    const graph = (title: string, left: IMetric[], width = 8) =>
      new GraphWidget({ title, left, width, height: 6, period: Duration.minutes(5) });

    this.dashboard = new Dashboard(this, 'Dashboard', {
      dashboardName: `${name}-saga`,
      defaultInterval: Duration.hours(3),
    });
    this.dashboard.addWidgets(
      new TextWidget({
        markdown: `# ${name}: orders, stock, money, events\nWhat each alarm means and what to do: docs/operations.md. Locally the same figures are at \`GET /metrics\` (infra/grafana/).`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      graph('Orders', [
        orders(Name.OrdersPlaced, 'placed'),
        orders(Name.OrdersCompleted, 'completed'),
        orders(Name.OrdersCompensated, 'compensated'),
      ]),
      graph('Compensated, by reason', [breakdown(this, Name.OrdersCompensated, 'orders', 'reason')]),
      graph('Compensated, % of placed', [
        new MathExpression({
          expression: '100 * compensated / placed',
          usingMetrics: {
            placed: businessMetric(this, Name.OrdersPlaced, 'orders'),
            compensated: businessMetric(this, Name.OrdersCompensated, 'orders'),
          },
          label: '% compensated',
          period: Duration.minutes(5),
        }),
      ]),
    );
    this.dashboard.addWidgets(
      graph(
        'Saga duration (ms, placed → final)',
        percentiles((statistic, label) =>
          businessMetric(this, Name.SagaDuration, 'orders', { statistic, label }),
        ),
      ),
      graph(
        'Payment wait (ms)',
        percentiles((statistic, label) =>
          businessMetric(this, Name.PaymentWait, 'payments', { statistic, label }),
        ),
      ),
      graph('Stock refusals, by reason', [breakdown(this, Name.StockRefusals, 'inventory', 'reason')]),
    );
    this.dashboard.addWidgets(
      graph('Events published to NATS', [
        businessMetric(this, Name.EventsPublished, 'bridge', { label: 'published' }),
        businessMetric(this, Name.BridgeFailures, 'bridge', { label: 'failed (retried)' }),
      ]),
      graph('Bridge lag (ms, commit → PubAck)', [
        ...percentiles((statistic, label) =>
          businessMetric(this, Name.BridgeLag, 'bridge', { statistic, label }),
        ),
        businessMetric(this, Name.BridgeLag, 'bridge', { statistic: 'Maximum', label: 'max' }),
      ]),
      graph('Webhook deliveries, by result', [breakdown(this, Name.WebhookOutcomes, 'payments', 'result')]),
    );
    this.dashboard.addWidgets(
      graph(
        'Money that needs a person',
        [
          businessMetric(this, Name.WebhookFailures, 'payments', { label: 'webhook 500s (Stripe retries)' }),
          businessMetric(this, Name.StrayChargesRefunded, 'payments', { label: 'stray charges refunded' }),
          businessMetric(this, Name.RefundsFailed, 'payments', { label: 'refunds failed' }),
        ],
        24,
      ),
    );
    this.dashboard.addWidgets(
      graph('Executions', [
        props.stateMachine.metricStarted({ label: 'started' }),
        props.stateMachine.metricSucceeded({ label: 'succeeded' }),
        props.stateMachine.metricFailed({ label: 'failed' }),
        props.stateMachine.metricThrottled({ label: 'throttled' }),
      ]),
      graph(
        'Task and webhook errors',
        Object.entries(props.functions).map(([label, fn]) => fn.metricErrors({ label })),
      ),
      graph(
        'Task and webhook throttles',
        Object.entries(props.functions).map(([label, fn]) => fn.metricThrottles({ label })),
      ),
    );
    this.dashboard.addWidgets(
      graph('API', [
        props.api.metricCount({ label: 'requests' }),
        props.api.metricClientError({ label: '4xx' }),
        props.api.metricServerError({ label: '5xx' }),
      ]),
      graph('API latency (ms)', [
        props.api.metricLatency({ statistic: 'p50', label: 'p50' }),
        props.api.metricLatency({ statistic: 'p99', label: 'p99' }),
      ]),
      graph(
        'Stream readers: oldest record (ms)',
        Object.entries(props.readers).map(([label, fn]) =>
          fn.metric('IteratorAge', { statistic: 'Maximum', label }),
        ),
      ),
    );
    this.dashboard.addWidgets(
      new AlarmStatusWidget({ title: 'Alarms', alarms: props.alarms, width: 24, height: 4 }),
    );
  }
}
