import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import {
  Choice,
  Condition,
  DefinitionBody,
  Errors,
  Fail,
  IntegrationPattern,
  JsonPath,
  LogLevel,
  Pass,
  StateMachine,
  StateMachineType,
  Succeed,
  TaskInput,
  Timeout,
} from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';

export interface SagaStateMachineProps {
  orderStep: IFunction;
  reserveStock: IFunction;
  confirmStock: IFunction;
  releaseStock: IFunction;
  createPayment: IFunction;
  requestPayment: IFunction;
  cancelPayment: IFunction;
  /** How long the payment step waits for the webhook's verdict before compensating. */
  paymentTimeoutSeconds: number;
}

/** Faults worth another attempt: throttling and brief unavailability of DynamoDB, Stripe or the network. */
const FAULTS = [
  'ThrottlingException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'TransactionConflictException',
  // A transaction cancelled by conflicts or throttling. The repositories turn failed conditions into
  // outcomes, so one escapes only where it means inconsistent data; it then fails again, and compensates.
  'TransactionCancelledError',
  'InternalServerError',
  'ServiceUnavailable',
  'PaymentProviderUnavailableError',
  'TimeoutError',
];

/**
 * For every task but the payment wait: those are idempotent, so one that committed and then timed
 * out is simply repeated. (The payment wait's own timeout means PAYMENT_TIMEOUT.)
 */
const TRANSIENT_ERRORS = ['States.Timeout', 'Sandbox.Timedout', 'Lambda.Unknown', ...FAULTS];

/**
 * The order saga (Standard workflow, JSONPath): reserve → payment (callback, with a timeout) →
 * confirm → complete; any failure runs the compensation chain. This definition is the only one:
 * the local runtime executes the ASL synthesized from it.
 */
export class SagaStateMachine extends Construct {
  readonly stateMachine: StateMachine;

  constructor(scope: Construct, id: string, props: SagaStateMachineProps) {
    super(scope, id);
    const task = (
      name: string,
      fn: IFunction,
      payload: Record<string, unknown>,
      resultPath: string | null,
    ) => {
      const invoke = new LambdaInvoke(this, name, {
        lambdaFunction: fn,
        payload: TaskInput.fromObject(payload),
        payloadResponseOnly: true,
        resultPath: resultPath ?? JsonPath.DISCARD,
        taskTimeout: Timeout.duration(Duration.seconds(30)),
        retryOnServiceExceptions: true,
      });
      invoke.addRetry({
        errors: TRANSIENT_ERRORS,
        interval: Duration.seconds(1),
        backoffRate: 2,
        maxAttempts: 4,
      });
      return invoke;
    };
    const orderId = JsonPath.stringAt('$.orderId');
    const failure = JsonPath.objectAt('$.failure');

    // Compensation: every step is idempotent and retried; if one still fails, the execution fails
    // (and alarms) with the order left COMPENSATING for an operator.
    const compensationFailed = new Fail(this, 'CompensationFailed', {
      error: 'CompensationFailed',
      causePath: JsonPath.stringAt('$.compensationError.Cause'),
    });
    const compensate = (
      name: string,
      fn: IFunction,
      payload: Record<string, unknown>,
      resultPath: string | null = null,
    ) =>
      task(name, fn, payload, resultPath)
        .addRetry({ errors: [Errors.ALL], interval: Duration.seconds(2), backoffRate: 2, maxAttempts: 5 })
        .addCatch(compensationFailed, { errors: [Errors.ALL], resultPath: '$.compensationError' });

    // Its result carries the order's cancellation reason, which the payment events then report too.
    const markCompensating = compensate(
      'MarkCompensating',
      props.orderStep,
      { step: 'COMPENSATING', orderId, failure },
      '$.compensating',
    );
    // Stock first: if it turns out sold (ConfirmStock committed but its task still failed),
    // ReleaseStock refuses and the execution fails before any refund, never refund-and-keep-the-sale.
    markCompensating
      .next(compensate('ReleaseStock', props.releaseStock, { orderId }))
      .next(
        compensate('CancelPayment', props.cancelPayment, {
          orderId,
          failure,
          cancellationReason: JsonPath.stringAt('$.compensating.cancellationReason'),
        }),
      )
      .next(compensate('MarkCompensated', props.orderStep, { step: 'COMPENSATED', orderId, failure }))
      .next(new Succeed(this, 'OrderCancelled'));

    const forward = (step: LambdaInvoke) =>
      step.addCatch(markCompensating, { errors: [Errors.ALL], resultPath: '$.failure' });

    const reserve = forward(
      task(
        'ReserveStock',
        props.reserveStock,
        { orderId, currency: JsonPath.stringAt('$.currency'), items: JsonPath.listAt('$.items') },
        '$.reservation',
      ),
    );
    const stockUnavailable = new Pass(this, 'StockUnavailable', {
      parameters: { 'Error.$': '$.reservation.reason', Cause: 'The stock could not be reserved.' },
      resultPath: '$.failure',
    }).next(markCompensating);

    const markStockReserved = forward(
      task(
        'MarkStockReserved',
        props.orderStep,
        {
          step: 'STOCK_RESERVED',
          orderId,
          reservation: {
            amount: JsonPath.numberAt('$.reservation.amount'),
            currency: JsonPath.stringAt('$.reservation.currency'),
            items: JsonPath.listAt('$.reservation.items'),
          },
        },
        null,
      ),
    );
    // The PaymentIntent exists before the order shows PAYMENT_PENDING, so the order can show its
    // customer the client secret to confirm it with.
    const createPayment = forward(
      task(
        'CreatePayment',
        props.createPayment,
        {
          orderId,
          customerId: JsonPath.stringAt('$.customerId'),
          amount: JsonPath.numberAt('$.reservation.amount'),
          currency: JsonPath.stringAt('$.reservation.currency'),
        },
        '$.paymentIntent',
      ),
    );
    const markPaymentPending = forward(
      task(
        'MarkPaymentPending',
        props.orderStep,
        { step: 'PAYMENT_PENDING', orderId, payment: JsonPath.objectAt('$.paymentIntent') },
        null,
      ),
    );

    // Only the payment step's own timeout means PAYMENT_TIMEOUT; any other task timing out is a fault.
    const paymentTimedOut = new Pass(this, 'PaymentTimedOut', {
      parameters: { Error: 'PAYMENT_TIMEOUT', 'Cause.$': '$.failure.Cause' },
      resultPath: '$.failure',
    }).next(markCompensating);
    const requestPaymentTask = new LambdaInvoke(this, 'RequestPayment', {
      lambdaFunction: props.requestPayment,
      integrationPattern: IntegrationPattern.WAIT_FOR_TASK_TOKEN,
      payload: TaskInput.fromObject({
        orderId,
        customerId: JsonPath.stringAt('$.customerId'),
        amount: JsonPath.numberAt('$.reservation.amount'),
        currency: JsonPath.stringAt('$.reservation.currency'),
        paymentMethodId: JsonPath.stringAt('$.paymentMethodId'),
        taskToken: JsonPath.taskToken,
      }),
      resultPath: '$.payment',
      taskTimeout: Timeout.duration(Duration.seconds(props.paymentTimeoutSeconds)),
      retryOnServiceExceptions: true,
    });
    // Retried with a fresh token: the step is idempotent (one intent per order, keyed confirms).
    requestPaymentTask.addRetry({
      errors: FAULTS,
      interval: Duration.seconds(1),
      backoffRate: 2,
      maxAttempts: 3,
    });
    requestPaymentTask.addCatch(paymentTimedOut, { errors: [Errors.TIMEOUT], resultPath: '$.failure' });
    const requestPayment = forward(requestPaymentTask);
    // The order records the payment before the stock is sold; a customer cancel that got there
    // first fails this step (CustomerCancelledError) and the payment is refunded.
    const markPaymentSucceeded = forward(
      task('MarkPaymentSucceeded', props.orderStep, { step: 'PAYMENT_SUCCEEDED', orderId }, null),
    );
    const confirm = forward(task('ConfirmStock', props.confirmStock, { orderId }, null));
    // Paid and sold: from here the order can only complete. Retry until it does; if it still cannot,
    // fail (and alarm) rather than refund a sale whose stock is already gone.
    const complete = task(
      'CompleteOrder',
      props.orderStep,
      {
        step: 'COMPLETED',
        orderId,
        payment: {
          paymentIntentId: JsonPath.stringAt('$.payment.paymentIntentId'),
          status: JsonPath.stringAt('$.payment.status'),
        },
      },
      null,
    )
      .addRetry({ errors: [Errors.ALL], interval: Duration.seconds(2), backoffRate: 2, maxAttempts: 8 })
      .addCatch(
        new Fail(this, 'CompletionFailed', {
          error: 'CompletionFailed',
          causePath: JsonPath.stringAt('$.completionError.Cause'),
        }),
        { errors: [Errors.ALL], resultPath: '$.completionError' },
      );

    const definition = reserve.next(
      new Choice(this, 'StockReserved?')
        .when(
          Condition.stringEquals('$.reservation.outcome', 'RESERVED'),
          markStockReserved
            .next(createPayment)
            .next(markPaymentPending)
            .next(requestPayment)
            .next(markPaymentSucceeded)
            .next(confirm)
            .next(complete)
            .next(new Succeed(this, 'OrderCompleted')),
        )
        .otherwise(stockUnavailable),
    );

    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromChainable(definition),
      tracingEnabled: true,
      logs: {
        destination: new LogGroup(this, 'Logs', {
          retention: RetentionDays.ONE_MONTH,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
        level: LogLevel.ERROR,
        includeExecutionData: false,
      },
    });
  }
}
