import { CfnOutput, CfnParameter, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { HttpMethod } from 'aws-cdk-lib/aws-apigatewayv2';
import { Policy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { outboxFilterPattern } from '../shared/outbox/read.ts';
import { SagaAlarms } from './alarms.ts';
import { SagaDashboard } from './dashboard.ts';
import { EventBridge } from './event-bridge.ts';
import { OrderSagaHttpApi, type Throttle } from './http-api.ts';
import { InventoryService } from './inventory-service.ts';
import { AlarmTopic, type AlarmTopicProps } from './observability.ts';
import { OrdersService } from './orders-service.ts';
import { PaymentsService } from './payments-service.ts';
import { SagaStateMachine } from './saga-state-machine.ts';
import { ServiceFunction } from './service-function.ts';
import { setStage, stageSettings, type StageSettings } from './stage.ts';
import { streamFailureQueue, tableStreamSource } from './stream-source.ts';
import type { Settings } from './settings.ts';

export interface OrderSagaStackProps extends StackProps {
  settings: Settings;
  /** Production (kept) or throwaway; default: a production stage named `prod`. */
  stage?: StageSettings;
  jwt?: { issuer: string; audience: string[]; adminScope: string };
  /** Point the payment functions at a Stripe emulator (LocalStack runs); never set in production. */
  stripeApiUrl?: string;
  /** The Secrets Manager secret with the bridge's NATS credentials and CA (docs/nats.md). */
  natsSecretArn?: string;
  /** The customer-managed KMS key the Stripe and NATS secrets are encrypted with, if not AWS's own. */
  secretsKeyArn?: string;
  /** Who gets the alarms; without any, the topic exists and pages nobody until subscribed. */
  alarms?: AlarmTopicProps;
  /**
   * Reserved concurrency of each saga task, and of the webhook. `undefined` leaves a function on the
   * account's shared pool (an account whose quota cannot spare them, LocalStack).
   */
  concurrency?: { tasks?: number; webhook?: number };
  /** The API's limit on every route, and the webhook's own. */
  throttle?: { api: Throttle; webhook: Throttle };
}

/** Defaults sized for a shop of a few hundred orders a second; docs/deploy.md says how to change them. */
export const DEFAULT_CONCURRENCY = { tasks: 50, webhook: 25 } as const;
export const DEFAULT_THROTTLE = {
  api: { rateLimit: 500, burstLimit: 1000 },
  // Stripe sends a few events per order; a flood beyond this is not Stripe.
  webhook: { rateLimit: 100, burstLimit: 200 },
} as const;

/** Composes the services; every dependency between them is a grant or an environment variable here. */
export class OrderSagaStack extends Stack {
  constructor(scope: Construct, id: string, props: OrderSagaStackProps) {
    super(scope, id, props);
    const stage = props.stage ?? stageSettings();
    setStage(this, stage);
    const { removalPolicy } = stage;
    const concurrency = props.concurrency ?? DEFAULT_CONCURRENCY;
    const throttle = props.throttle ?? DEFAULT_THROTTLE;

    const natsUrl = new CfnParameter(this, 'NatsUrl', {
      type: 'String',
      description: 'Comma-separated nats:// URLs of the JetStream cluster the bridge publishes to',
      minLength: 1,
    });
    const secretParameter = (name: string, description: string) =>
      Secret.fromSecretCompleteArn(
        this,
        name.replace(/Arn$/, ''),
        new CfnParameter(this, name, {
          type: 'String',
          description,
          allowedPattern: '^arn:.+',
          noEcho: true,
        }).valueAsString,
      );
    const apiKeySecret = secretParameter(
      'StripeApiKeySecretArn',
      'Secrets Manager secret holding the Stripe secret key (sk_...): the payment steps read it',
    );
    const webhookSecret = secretParameter(
      'StripeWebhookSecretArn',
      'Secrets Manager secret holding the webhook endpoint signing secret (whsec_...): the webhook alone reads it',
    );
    const secretsKey = props.secretsKeyArn
      ? Key.fromKeyArn(this, 'SecretsKey', props.secretsKeyArn)
      : undefined;

    const orders = new OrdersService(this, 'Orders', {
      removalPolicy,
      ...(concurrency.tasks ? { taskConcurrency: concurrency.tasks } : {}),
    });
    const inventory = new InventoryService(this, 'Inventory', {
      removalPolicy,
      reservationTtlSeconds: props.settings.RESERVATION_TTL_SECONDS,
      sweepIntervalSeconds: props.settings.RESERVATION_SWEEP_INTERVAL_SECONDS,
      ...(concurrency.tasks ? { taskConcurrency: concurrency.tasks } : {}),
    });
    const payments = new PaymentsService(this, 'Payments', {
      removalPolicy,
      apiKeySecret,
      webhookSecret,
      ...(secretsKey ? { secretsKey } : {}),
      ...(props.stripeApiUrl ? { stripeApiUrl: props.stripeApiUrl } : {}),
      ...(concurrency.tasks ? { taskConcurrency: concurrency.tasks } : {}),
      ...(concurrency.webhook ? { webhookConcurrency: concurrency.webhook } : {}),
    });
    for (const [name, table] of Object.entries({
      Orders: orders.table,
      Inventory: inventory.table,
      Payments: payments.table,
    })) {
      new CfnOutput(this, `${name}TableName`, {
        value: table.tableName,
        description: `The ${name.toLowerCase()} service's table`,
      });
    }

    // The tasks invoke published versions: an execution keeps the code it started with.
    const tasks = {
      orderStep: orders.sagaStep,
      reserveStock: inventory.reserve,
      confirmStock: inventory.confirm,
      releaseStock: inventory.release,
      createPayment: payments.createPayment,
      requestPayment: payments.requestPayment,
      resolvePayment: payments.resolvePayment,
      cancelPayment: payments.cancelPayment,
    };
    const saga = new SagaStateMachine(this, 'Saga', {
      ...(Object.fromEntries(Object.entries(tasks).map(([name, fn]) => [name, fn.version])) as Record<
        keyof typeof tasks,
        ServiceFunction['version']
      >),
      paymentTimeoutSeconds: props.settings.PAYMENT_TIMEOUT_SECONDS,
    });
    new CfnOutput(this, 'StateMachineArn', {
      value: saga.stateMachine.stateMachineArn,
      description: 'The order saga (npm run saga:redrive and npm run reconcile read it)',
    });
    // Orders start sagas; payments answer the waiting payment step.
    for (const starter of [orders.createOrder.function, orders.startSagas.function]) {
      saga.stateMachine.grantStartExecution(starter);
      starter.addEnvironment('STATE_MACHINE_ARN', saga.stateMachine.stateMachineArn);
    }
    // A separate policy, not the functions' default one: the state machine invokes RequestPayment,
    // and a function waits for its default policy, so granting there would be a dependency cycle.
    new Policy(this, 'PaymentTaskResponse', {
      roles: [
        payments.requestPayment.function.role!,
        payments.webhook.function.role!,
        payments.customerPayment.function.role!,
      ],
      statements: [
        new PolicyStatement({
          actions: ['states:SendTaskSuccess', 'states:SendTaskFailure', 'states:SendTaskHeartbeat'],
          resources: [saga.stateMachine.stateMachineArn],
        }),
      ],
    });

    // A customer's cancel reaches the payment at once (Stripe decides the race with a success), and
    // the order asks the payment for the client secret, which never travels through the saga.
    for (const caller of [orders.cancelOrder, orders.getOrder])
      payments.customerPayment.invokableBy(caller, 'PAYMENTS_FUNCTION_NAME');
    // Which tokens are the back office's (shared/caller.ts): the customer routes see every order for them.
    if (props.jwt) {
      for (const route of [orders.createOrder, orders.getOrder, orders.cancelOrder])
        route.function.addEnvironment('ADMIN_SCOPE', props.jwt.adminScope);
    }

    const bridge = new EventBridge(this, 'Bridge', {
      tables: [orders.table, inventory.table, payments.table],
      natsUrl: natsUrl.valueAsString,
      ...(props.natsSecretArn ? { natsSecretArn: props.natsSecretArn } : {}),
      ...(secretsKey ? { secretsKey } : {}),
    });

    // Every committed order.created starts its saga, even when the request could not.
    const unstartedSagas = streamFailureQueue(this, 'UnstartedSagas');
    orders.startSagas.function.addEventSource(
      tableStreamSource(orders.table, {
        filter: outboxFilterPattern(['order.created']),
        onFailure: unstartedSagas,
        batchSize: 25,
      }),
    );

    const health = new ServiceFunction(this, 'Health', {
      entry: 'functions/health/get-health.ts',
      service: 'health',
      description: 'GET /health',
      invokedBy: 'api',
      memorySize: 128,
    });

    const http = new OrderSagaHttpApi(this, 'Http', {
      ...(props.jwt ? { jwt: props.jwt } : {}),
      throttle: throttle.api,
      routes: [
        { method: HttpMethod.GET, path: '/health', handler: health.function, audience: 'public' },
        {
          method: HttpMethod.GET,
          path: '/products',
          handler: inventory.listProducts.function,
          audience: 'admin',
        },
        {
          method: HttpMethod.PUT,
          path: '/products/{sku}',
          handler: inventory.putProduct.function,
          audience: 'admin',
        },
        {
          method: HttpMethod.GET,
          path: '/products/{sku}',
          handler: inventory.getProduct.function,
          audience: 'admin',
        },
        {
          method: HttpMethod.POST,
          path: '/products/{sku}/stock-adjustments',
          handler: inventory.adjustStock.function,
          audience: 'admin',
        },
        {
          method: HttpMethod.GET,
          path: '/inventory/reservations',
          handler: inventory.listReservations.function,
          audience: 'admin',
        },
        {
          method: HttpMethod.POST,
          path: '/orders',
          handler: orders.createOrder.function,
          audience: 'customer',
        },
        {
          method: HttpMethod.GET,
          path: '/orders/{orderId}',
          handler: orders.getOrder.function,
          audience: 'customer',
        },
        {
          method: HttpMethod.POST,
          path: '/orders/{orderId}/cancel',
          handler: orders.cancelOrder.function,
          audience: 'customer',
        },
        {
          method: HttpMethod.POST,
          path: '/payments/webhook',
          handler: payments.webhook.function,
          audience: 'public',
          throttle: throttle.webhook,
        },
      ],
    });

    const readers = {
      BridgeIteratorAge: {
        reader: bridge.function.function,
        what: 'The oldest outbox record waits for NATS: NATS unreachable, refusing the bridge, or a stream without a leader. Records keep their place and flow once NATS answers',
      },
      StartSagasIteratorAge: {
        reader: orders.startSagas.function,
        what: 'The oldest order.created waits for its saga to start: Step Functions refusing StartExecution (permissions, throttling, a bad input). Orders on that shard stay unstarted',
      },
      StockChangesIteratorAge: {
        reader: inventory.trackStockChanges.function,
        what: 'The oldest product or reservation change waits: reservation lines, expired holds and low-stock alerts are behind',
      },
    };
    const pressured = { ...tasks, webhook: payments.webhook };
    new SagaAlarms(this, 'Alarms', {
      stateMachine: saga.stateMachine,
      api: http.api,
      readers,
      deadLetters: {
        UnstartedSagas: {
          queue: unstartedSagas,
          what: 'Orders whose saga could not be started from their order.created outbox record',
        },
        StockChangeFailures: {
          queue: inventory.stockChangeFailures,
          what: 'Inventory stream records not handled: reservation line index, TTL-deleted holds or low-stock alerts',
        },
        BridgeDeadLetters: {
          queue: bridge.deadLetters,
          what: 'Outbox records waited 23 h and were not published: replay them (npm run events:replay -- --since TIME)',
        },
      },
      throttled: Object.values(pressured).map((fn) => fn.function),
    });
    const topic = new AlarmTopic(this, 'AlarmTopic', props.alarms ?? { emails: [], urls: [] });
    if (topic.undelivered)
      new Alarm(topic, 'UndeliveredAlarms', {
        alarmDescription:
          'SNS could not deliver an alarm to a subscriber (a pager endpoint down, an address bouncing): someone may not have been paged (docs/operations.md#undeliveredalarms)',
        metric: topic.undelivered.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
    const alarms = topic.pageOnEveryAlarm(this);
    new CfnOutput(this, 'AlarmTopicArn', {
      value: topic.topic.topicArn,
      description: 'Every alarm and its recovery is published here: subscribe a pager or a person',
    });

    const dashboard = new SagaDashboard(this, 'Dashboard', {
      stateMachine: saga.stateMachine,
      api: http.api,
      alarms,
      functions: Object.fromEntries(Object.entries(pressured).map(([name, fn]) => [name, fn.function])),
      readers: Object.fromEntries(Object.entries(readers).map(([name, { reader }]) => [name, reader])),
    });
    new CfnOutput(this, 'DashboardName', {
      value: dashboard.dashboard.dashboardName,
      description: 'The CloudWatch dashboard of orders, stock, money and events',
    });
    new CfnOutput(this, 'Stage', { value: stage.name, description: 'The stage this stack is' });
  }
}
