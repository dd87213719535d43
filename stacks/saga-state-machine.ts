import { Duration, Stack, Validations } from 'aws-cdk-lib';
import type { CfnFunction, IFunction, IVersion } from 'aws-cdk-lib/aws-lambda';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import {
  DefinitionBody,
  Errors,
  IntegrationPattern,
  JitterType,
  JsonPath,
  LogLevel,
  StateMachine,
  StateMachineType,
  TaskInput,
  Timeout,
} from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { PAYMENT_WAIT_FAULTS, RETRY, STEP_OUTCOMES, TASK_FAULTS } from '../shared/saga.ts';
import { stageOf } from './stage.ts';

/**
 * The functions the tasks invoke: published versions (ServiceFunction.version), so that an execution
 * keeps the code it started with when a deploy publishes new ones.
 */
export interface SagaStateMachineProps {
  orderStep: IVersion;
  reserveStock: IVersion;
  confirmStock: IVersion;
  releaseStock: IVersion;
  createPayment: IVersion;
  requestPayment: IVersion;
  resolvePayment: IVersion;
  cancelPayment: IVersion;
  /** How long the payment step waits for the payment's outcome before it asks Stripe. */
  paymentTimeoutSeconds: number;
}

type RetryBudget = (typeof RETRY)[keyof typeof RETRY];

/**
 * The order saga (Standard workflow, JSONPath), built around one rule: faults retry, outcomes decide
 * (shared/saga.ts has the names and the budgets).
 *
 *   ReserveStock → CreatePayment → MarkPaymentPending → RequestPayment ─(timeout)→ ResolvePayment
 *                                                            ↓                           ↓
 *                                                        ConfirmStock ←──────────────────┘
 *                                                            ↓
 *                                                        CompleteOrder (end)
 *
 * The happy path is six state transitions. An outcome (out of stock, declined, cancelled, expired)
 * runs the compensation chain with its reason. Before money can have moved (ReserveStock,
 * CreatePayment: nobody can pay an intent whose client secret nobody has seen), anything else that
 * outlasts its retries compensates with PROCESSING_ERROR. From MarkPaymentPending on, a fault never
 * compensates: it is retried for hours and then fails the execution, for an operator to redrive
 * (docs/operations.md); so a paid order whose stock is sold always completes. This definition is the
 * only one: the local runtime executes the ASL synthesized from it.
 */
export class SagaStateMachine extends Construct {
  readonly stateMachine: StateMachine;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: SagaStateMachineProps) {
    super(scope, id);
    const retry = (step: LambdaInvoke, errors: readonly string[], budget: RetryBudget) => {
      step.addRetry({
        errors: [...errors],
        interval: Duration.seconds(budget.intervalSeconds),
        backoffRate: budget.backoffRate,
        maxDelay: Duration.seconds(budget.maxDelaySeconds),
        maxAttempts: budget.maxAttempts,
        jitterStrategy: JitterType.FULL,
      });
      return step;
    };
    const task = (
      name: string,
      fn: IFunction,
      payload: Record<string, unknown>,
      resultPath: string | null,
      budget: RetryBudget,
    ) =>
      retry(
        new LambdaInvoke(this, name, {
          lambdaFunction: fn,
          payload: TaskInput.fromObject(payload),
          payloadResponseOnly: true,
          resultPath: resultPath ?? JsonPath.DISCARD,
          taskTimeout: Timeout.duration(Duration.seconds(30)),
          // Lambda's own faults are in TASK_FAULTS, retried with the step's budget, not CDK's default.
          retryOnServiceExceptions: false,
        }),
        TASK_FAULTS,
        budget,
      );
    const orderId = JsonPath.stringAt('$.orderId');
    const failure = JsonPath.objectAt('$.failure');

    // Compensation: every step idempotent, faults retried for hours; a step that still fails (or
    // meets a state no retry changes, such as stock already sold) fails the execution with the order
    // COMPENSATING, which alarms and can be redriven from that step.
    const markCompensating = task(
      'MarkCompensating',
      props.orderStep,
      { step: 'COMPENSATING', orderId, failure },
      // Its result carries the order's cancellation reason, which the payment events then report too.
      '$.compensating',
      RETRY.afterMoney,
    );
    markCompensating
      .next(task('ReleaseStock', props.releaseStock, { orderId }, null, RETRY.afterMoney))
      .next(
        task(
          'CancelPayment',
          props.cancelPayment,
          {
            orderId,
            failure,
            cancellationReason: JsonPath.stringAt('$.compensating.cancellationReason'),
          },
          null,
          RETRY.afterMoney,
        ),
      )
      .next(
        task(
          'MarkCompensated',
          props.orderStep,
          { step: 'COMPENSATED', orderId, failure },
          null,
          RETRY.afterMoney,
        ),
      );
    const compensateOn = (step: LambdaInvoke, errors: readonly string[]) => {
      step.addCatch(markCompensating, { errors: [...errors], resultPath: '$.failure' });
      return step;
    };

    // Before money: any failure that outlasts the retries compensates (PROCESSING_ERROR unless an outcome).
    const reserve = compensateOn(
      task(
        'ReserveStock',
        props.reserveStock,
        { orderId, currency: JsonPath.stringAt('$.currency'), items: JsonPath.listAt('$.items') },
        '$.reservation',
        RETRY.beforeMoney,
      ),
      [Errors.ALL],
    );
    const createPayment = compensateOn(
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
        RETRY.beforeMoney,
      ),
      [Errors.ALL],
    );
    // The order's two steps (stock reserved, payment pending) in one write; from here its customer
    // sees the client secret, so money may move.
    const markPaymentPending = compensateOn(
      task(
        'MarkPaymentPending',
        props.orderStep,
        {
          step: 'PAYMENT_PENDING',
          orderId,
          reservation: {
            amount: JsonPath.numberAt('$.reservation.amount'),
            currency: JsonPath.stringAt('$.reservation.currency'),
            items: JsonPath.listAt('$.reservation.items'),
          },
          payment: JsonPath.objectAt('$.paymentIntent'),
        },
        null,
        RETRY.afterMoney,
      ),
      STEP_OUTCOMES.MarkPaymentPending,
    );

    // The wait: the step confirms (with the order's payment method, if it has one) and reports an
    // outcome Stripe answered at once; otherwise the webhook does, or a customer's cancel. Faults are
    // retried with a fresh token (the step is idempotent); its own timeout asks Stripe.
    const requestPayment = retry(
      new LambdaInvoke(this, 'RequestPayment', {
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
        retryOnServiceExceptions: false,
      }),
      PAYMENT_WAIT_FAULTS,
      RETRY.afterMoney,
    );
    // Asks Stripe: a succeeded intent is paid; one that can still be canceled is canceled
    // (PaymentTimeoutError); a cancel refused because it just succeeded is paid.
    const resolvePayment = compensateOn(
      task('ResolvePayment', props.resolvePayment, { orderId }, '$.payment', RETRY.afterMoney),
      STEP_OUTCOMES.ResolvePayment,
    );
    compensateOn(requestPayment, STEP_OUTCOMES.RequestPayment);
    requestPayment.addCatch(resolvePayment, { errors: [Errors.TIMEOUT], resultPath: '$.failure' });

    // Paid: a ConfirmStock that committed and then failed is simply repeated (it is idempotent), so
    // paid and sold always completes; only an expired hold refunds.
    const confirm = compensateOn(
      task('ConfirmStock', props.confirmStock, { orderId }, null, RETRY.afterMoney),
      STEP_OUTCOMES.ConfirmStock,
    );
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
      RETRY.afterMoney,
    );
    resolvePayment.next(confirm);

    reserve.next(createPayment).next(markPaymentPending).next(requestPayment).next(confirm).next(complete);

    const stage = stageOf(this);
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: stage.logRetention,
      removalPolicy: stage.removalPolicy,
    });
    this.stateMachine = new StateMachine(this, 'StateMachine', {
      stateMachineType: StateMachineType.STANDARD,
      definitionBody: DefinitionBody.fromChainable(reserve),
      tracingEnabled: true,
      // Every state's entry and exit, without its input and output: those carry customers' orders
      // and the PaymentIntent's client secret.
      logs: { destination: this.logGroup, level: LogLevel.ALL, includeExecutionData: false },
    });
    // Each task names the version current when its execution started; a deploy publishes new ones
    // and moves the grant CDK writes to them. An execution started before (or a redrive of one) still
    // calls the version it started with, and one started before versions existed the function
    // itself: both stay invocable, or every saga spanning a deploy would be refused its next task.
    const functions = [
      ...new Set(
        Object.values(props)
          .filter(isVersion)
          .map((version) => version.lambda),
      ),
    ];
    this.stateMachine.addToRolePolicy(
      new PolicyStatement({
        actions: ['lambda:InvokeFunction'],
        resources: functions.flatMap((fn) => [fn.functionArn, `${fn.functionArn}:*`]),
      }),
    );
    const stack = Stack.of(this);
    for (const fn of functions) {
      const logicalId = stack.resolve(stack.getLogicalId(fn.node.defaultChild as CfnFunction)) as string;
      Validations.of(this.stateMachine).acknowledge({
        id: `AwsSolutions-IAM5[Resource::<${logicalId}.Arn>:*]`,
        reason:
          'Every published version of a saga task: executions started before a deploy keep invoking the version they started with (the version ARNs of older deploys are not known at synth time)',
      });
    }
    Validations.of(this.stateMachine).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Vended log delivery (logs:CreateLogDelivery, logs:DescribeResourcePolicies, …) and X-Ray (xray:PutTraceSegments, …) support only "*" as their resource',
    });
  }
}

const isVersion = (value: unknown): value is IVersion =>
  typeof value === 'object' && value !== null && 'lambda' in value && 'version' in value;
