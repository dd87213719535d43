import { CfnOutput, CfnParameter, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { HttpMethod } from 'aws-cdk-lib/aws-apigatewayv2';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { Policy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { outboxFilterPattern } from '../shared/outbox/read.ts';
import { EventBridge } from './event-bridge.ts';
import { OrderSagaHttpApi } from './http-api.ts';
import { InventoryService } from './inventory-service.ts';
import { OrdersService } from './orders-service.ts';
import { PaymentsService } from './payments-service.ts';
import { SagaStateMachine } from './saga-state-machine.ts';
import { ServiceFunction } from './service-function.ts';
import {
  ITERATOR_AGE_ALARM,
  MAX_RECORD_AGE,
  streamFailureQueue,
  tableStreamSource,
} from './stream-source.ts';
import type { Settings } from './settings.ts';

export interface OrderSagaStackProps extends StackProps {
  settings: Settings;
  /** Destroy tables with the stack (dev, LocalStack); production keeps them. */
  ephemeral?: boolean;
  jwt?: { issuer: string; audience: string[]; adminScope: string };
  /** Point the payment functions at a Stripe emulator (LocalStack runs); never set in production. */
  stripeApiUrl?: string;
  /** The Secrets Manager secret with the bridge's NATS credentials and CA (docs/nats.md). */
  natsSecretArn?: string;
}

/** Composes the services; every dependency between them is a grant or an environment variable here. */
export class OrderSagaStack extends Stack {
  constructor(scope: Construct, id: string, props: OrderSagaStackProps) {
    super(scope, id, props);
    const removalPolicy = props.ephemeral ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    const natsUrl = new CfnParameter(this, 'NatsUrl', {
      type: 'String',
      description: 'Comma-separated nats:// URLs of the JetStream cluster the bridge publishes to',
      minLength: 1,
    });
    const stripeSecretArn = new CfnParameter(this, 'StripeSecretArn', {
      type: 'String',
      description: 'Secrets Manager secret with {"apiKey":"sk_...","webhookSecret":"whsec_..."}',
      allowedPattern: '^arn:.+',
      noEcho: true,
    });

    const orders = new OrdersService(this, 'Orders', { removalPolicy });
    const inventory = new InventoryService(this, 'Inventory', {
      removalPolicy,
      reservationTtlSeconds: props.settings.RESERVATION_TTL_SECONDS,
      sweepIntervalSeconds: props.settings.RESERVATION_SWEEP_INTERVAL_SECONDS,
    });
    const payments = new PaymentsService(this, 'Payments', {
      removalPolicy,
      stripeSecret: Secret.fromSecretCompleteArn(this, 'StripeSecret', stripeSecretArn.valueAsString),
      ...(props.stripeApiUrl ? { stripeApiUrl: props.stripeApiUrl } : {}),
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

    const saga = new SagaStateMachine(this, 'Saga', {
      orderStep: orders.sagaStep.function,
      reserveStock: inventory.reserve.function,
      confirmStock: inventory.confirm.function,
      releaseStock: inventory.release.function,
      createPayment: payments.createPayment.function,
      requestPayment: payments.requestPayment.function,
      resolvePayment: payments.resolvePayment.function,
      cancelPayment: payments.cancelPayment.function,
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
    for (const caller of [orders.cancelOrder.function, orders.getOrder.function]) {
      payments.customerPayment.function.grantInvoke(caller);
      caller.addEnvironment('PAYMENTS_FUNCTION_NAME', payments.customerPayment.function.functionName);
    }
    // Which tokens are the back office's (shared/caller.ts): the customer routes see every order for them.
    if (props.jwt) {
      for (const route of [orders.createOrder, orders.getOrder, orders.cancelOrder])
        route.function.addEnvironment('ADMIN_SCOPE', props.jwt.adminScope);
    }

    const bridge = new EventBridge(this, 'Bridge', {
      tables: [orders.table, inventory.table, payments.table],
      natsUrl: natsUrl.valueAsString,
      ...(props.natsSecretArn ? { natsSecretArn: props.natsSecretArn } : {}),
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
      memorySize: 128,
    });

    new OrderSagaHttpApi(this, 'Http', {
      ...(props.jwt ? { jwt: props.jwt } : {}),
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
        },
      ],
    });

    // A failed execution means a compensation could not finish: someone has to look.
    new Alarm(this, 'SagaExecutionsFailed', {
      alarmDescription:
        'An order saga failed: a step kept failing for hours (or met a state no retry changes) after money may have moved, or during compensation; fix the cause and redrive (docs/operations.md)',
      metric: saga.stateMachine.metricFailed({ period: Duration.minutes(1) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    new Alarm(this, 'UnstartedSagasAlarm', {
      alarmDescription: 'Orders whose saga could not be started from their order.created outbox record',
      metric: unstartedSagas.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    new Alarm(this, 'StockChangeFailures', {
      alarmDescription:
        'Inventory stream records not handled: reservation line index, TTL-deleted holds or low-stock alerts',
      metric: inventory.stockChangeFailures.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    new Alarm(this, 'StripeWebhookFailing', {
      alarmDescription:
        'The Stripe webhook answered 500: an event is not applied yet (Stripe retries for up to 3 days), for example a refund Stripe refuses',
      metric: payments.webhookFailures,
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    new Alarm(this, 'StrayChargesRefunded', {
      alarmDescription:
        "A PaymentIntent the order's payment does not own (a second intent, or another amount) took money and was refunded",
      metric: payments.strayCharges,
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    new Alarm(this, 'RefundsFailed', {
      alarmDescription:
        'Stripe reported a refund failed (refund.failed): the money is back in the Stripe balance, not with the customer',
      metric: payments.refundFailures,
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    // A stream reader retries a failing record until it is 23 h old, and Lambda restarts a shard
    // from its earliest failed record: a record that keeps failing holds its shard back. Page early.
    const readers = {
      BridgeIteratorAge: [
        bridge.function.function,
        'The oldest outbox record waits for NATS: NATS unreachable, refusing the bridge, or a stream without a leader. Records keep their place and flow once NATS answers',
      ],
      StartSagasIteratorAge: [
        orders.startSagas.function,
        'The oldest order.created waits for its saga to start: Step Functions refusing StartExecution (permissions, throttling, a bad input). Orders on that shard stay unstarted',
      ],
      StockChangesIteratorAge: [
        inventory.trackStockChanges.function,
        'The oldest product or reservation change waits: reservation lines, expired holds and low-stock alerts are behind',
      ],
    } as const;
    for (const [id, [reader, what]] of Object.entries(readers)) {
      new Alarm(this, id, {
        alarmDescription: `${what}. It has waited ${ITERATOR_AGE_ALARM.toMinutes()} min or more; at ${MAX_RECORD_AGE.toHours()} h it goes to the dead letters (docs/operations.md)`,
        metric: reader.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1) }),
        threshold: ITERATOR_AGE_ALARM.toMilliseconds(),
        evaluationPeriods: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
    }
    new Alarm(this, 'BridgeDeadLetters', {
      alarmDescription: `Outbox records waited ${MAX_RECORD_AGE.toHours()} h and were not published: replay them (npm run events:replay -- --since TIME)`,
      metric: bridge.deadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  }
}
