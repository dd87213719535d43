import {
  ExecutionAlreadyExists,
  ExecutionDoesNotExist,
  ExecutionNotRedrivable,
  InvalidArn,
  InvalidExecutionInput,
  InvalidToken,
  SFN,
  StateMachineDoesNotExist,
  TaskTimedOut,
  paginateListExecutions,
  type DescribeExecutionOutput,
} from '@aws-sdk/client-sfn';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { startStepFunctionsEndpoint, type InvokeFunction, type StepFunctionsEndpoint } from './index.ts';

const fn = (name: string) => `arn:aws:lambda:us-east-1:000000000000:function:${name}`;

interface Call {
  arn: string;
  payload: Record<string, unknown>;
}

const calls: Call[] = [];
/** Orders whose `flaky` downstream has been fixed: until then it fails. */
const fixedOrders = new Set<string>();

const invoke: InvokeFunction = async (arn, payload) => {
  const input = (payload ?? {}) as Record<string, unknown>;
  calls.push({ arn, payload: input });
  switch (arn.split(':')[6]) {
    case 'reserve':
      return { ok: Number(input.qty) <= 5, executionId: input.executionId, at: new Date(0) };
    case 'price':
      return { price: 42 };
    case 'request-payment':
      if (input.orderId === 'o-unreachable') {
        const error = new Error('payment service unreachable');
        error.name = 'PaymentServiceDown';
        throw error;
      }
      return { accepted: true };
    case 'confirm':
      return { ...input, confirmed: true };
    case 'release':
      return { released: true, because: input.error };
    case 'double':
      return Number(payload) * 2;
    case 'prepare':
      return { preparedFor: input.orderId };
    case 'flaky':
      if (!fixedOrders.has(String(input.orderId))) {
        const error = new Error('the downstream service is down');
        error.name = 'DownstreamUnavailable';
        throw error;
      }
      return { ok: true, redriveCount: input.redriveCount };
    case 'expiring': {
      const error = new Error('reservation r-1 expired');
      error.name = String(input.kind);
      throw error;
    }
    default:
      throw new Error(`no fake for ${arn}`);
  }
};

/** Order → reserve (Lambda ARN) → choice. Parameters read the context object. */
const reserveDefinition = {
  StartAt: 'Reserve',
  States: {
    Reserve: {
      Type: 'Task',
      Resource: fn('reserve'),
      Parameters: { 'qty.$': '$.qty', 'executionId.$': '$$.Execution.Id' },
      ResultPath: '$.reservation',
      Next: 'InStock?',
    },
    'InStock?': {
      Type: 'Choice',
      Choices: [{ Variable: '$.reservation.ok', BooleanEquals: true, Next: 'Reserved' }],
      Default: 'OutOfStock',
    },
    Reserved: { Type: 'Succeed' },
    OutOfStock: { Type: 'Fail', Error: 'OutOfStock', Cause: 'not enough stock' },
  },
};

/** lambda:invoke with a bare function name; ResultSelector picks from the AWS-shaped result. */
const priceDefinition = {
  StartAt: 'Price',
  States: {
    Price: {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke',
      Parameters: { FunctionName: 'price', 'Payload.$': '$' },
      ResultSelector: {
        'price.$': '$.Payload.price',
        'status.$': '$.StatusCode',
        'version.$': '$.ExecutedVersion',
        'http.$': '$.SdkHttpMetadata.HttpStatusCode',
        'requestId.$': '$.SdkResponseMetadata.RequestId',
      },
      ResultPath: '$.quote',
      End: true,
    },
  },
};

/** waitForTaskToken payment step with compensation and timeout routes. */
function paymentDefinition(timeoutSeconds: number) {
  return {
    StartAt: 'AwaitPayment',
    States: {
      AwaitPayment: {
        Type: 'Task',
        Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
        Parameters: {
          FunctionName: fn('request-payment'),
          Payload: { 'orderId.$': '$.orderId', 'taskToken.$': '$$.Task.Token' },
        },
        TimeoutSeconds: timeoutSeconds,
        ResultPath: '$.payment',
        Catch: [
          { ErrorEquals: ['PaymentDeclined'], ResultPath: '$.error', Next: 'Compensate' },
          // States.TaskFailed matches every Task error except States.Timeout, which must reach TimedOut.
          { ErrorEquals: ['States.TaskFailed'], Next: 'PaymentFailed' },
          { ErrorEquals: ['States.Timeout'], ResultPath: '$.error', Next: 'TimedOut' },
        ],
        Next: 'Confirm',
      },
      Confirm: { Type: 'Task', Resource: fn('confirm'), End: true },
      Compensate: { Type: 'Task', Resource: fn('release'), End: true },
      TimedOut: { Type: 'Pass', Result: 'timed-out', ResultPath: '$.outcome', End: true },
      PaymentFailed: { Type: 'Fail', ErrorPath: '$.Error', CausePath: '$.Cause' },
    },
  };
}

const twoWaitsDefinition = {
  StartAt: 'First',
  States: {
    First: {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
      Parameters: {
        FunctionName: fn('request-payment'),
        Payload: { 'orderId.$': '$.orderId', step: 'first', 'taskToken.$': '$$.Task.Token' },
      },
      ResultPath: '$.first',
      Next: 'Second',
    },
    Second: {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
      Parameters: {
        FunctionName: fn('request-payment'),
        Payload: { 'orderId.$': '$.orderId', step: 'second', 'taskToken.$': '$$.Task.Token' },
      },
      ResultPath: '$.second',
      End: true,
    },
  },
};

const expiringDefinition = {
  StartAt: 'Hold',
  States: {
    Hold: {
      Type: 'Task',
      Resource: fn('expiring'),
      Catch: [{ ErrorEquals: ['ReservationExpiredError'], ResultPath: '$.error', Next: 'Expired' }],
      End: true,
    },
    Expired: { Type: 'Pass', End: true },
  },
};

/** Task states nested in Parallel branches and a Map processor must be dispatched locally too. */
const nestedDefinition = {
  StartAt: 'Fan',
  States: {
    Fan: {
      Type: 'Parallel',
      Branches: [
        {
          StartAt: 'BranchReserve',
          States: { BranchReserve: { Type: 'Task', Resource: fn('reserve'), End: true } },
        },
        {
          StartAt: 'Doubles',
          States: {
            Doubles: {
              Type: 'Map',
              ItemsPath: '$.items',
              ItemProcessor: {
                StartAt: 'Double',
                States: { Double: { Type: 'Task', Resource: fn('double'), End: true } },
              },
              End: true,
            },
          },
        },
      ],
      End: true,
    },
  },
};

/** Prepare → Flaky (fails until its order is fixed, no Retry) → Done: the shape a redrive resumes. */
const redriveDefinition = {
  StartAt: 'Prepare',
  States: {
    Prepare: { Type: 'Task', Resource: fn('prepare'), ResultPath: '$.prepared', Next: 'Flaky' },
    Flaky: {
      Type: 'Task',
      Resource: fn('flaky'),
      Parameters: { 'orderId.$': '$.orderId', 'redriveCount.$': '$$.Execution.RedriveCount' },
      ResultPath: '$.flaky',
      Next: 'Done',
    },
    Done: { Type: 'Pass', End: true },
  },
};

const passDefinition = { StartAt: 'Only', States: { Only: { Type: 'Pass', End: true } } };

const unsupportedDefinition = {
  StartAt: 'Put',
  States: {
    Put: {
      Type: 'Task',
      Resource: 'arn:aws:states:::dynamodb:putItem',
      Parameters: { TableName: 'orders', Item: {} },
      Catch: [{ ErrorEquals: ['States.ALL'], Next: 'Caught' }],
      End: true,
    },
    Caught: { Type: 'Pass', End: true },
  },
};

let endpoint: StepFunctionsEndpoint;
let sfn: SFN;

beforeAll(async () => {
  endpoint = await startStepFunctionsEndpoint({
    stateMachines: [
      { name: 'reserve', definition: reserveDefinition },
      { name: 'price', definition: priceDefinition },
      { name: 'payment', definition: paymentDefinition(30) },
      { name: 'payment-timeout', definition: paymentDefinition(1) },
      { name: 'two-waits', definition: twoWaitsDefinition },
      { name: 'expiring', definition: expiringDefinition },
      { name: 'nested', definition: nestedDefinition },
      { name: 'unsupported', definition: unsupportedDefinition },
      { name: 'redrive', definition: redriveDefinition },
      { name: 'listing', definition: passDefinition },
    ],
    invoke,
  });
  sfn = new SFN({
    endpoint: endpoint.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    maxAttempts: 1,
  });
});

afterAll(async () => {
  sfn?.destroy();
  await endpoint?.close();
});

/** Polls `probe` until it yields a value, failing after the deadline. */
async function until<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 10_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function finished(executionArn: string, timeoutMs = 10_000): Promise<DescribeExecutionOutput> {
  return until(
    `${executionArn} to finish`,
    async () => {
      const described = await sfn.describeExecution({ executionArn });
      return described.status === 'RUNNING' ? undefined : described;
    },
    timeoutMs,
  );
}

async function start(machine: string, input: unknown, name?: string) {
  return sfn.startExecution({
    stateMachineArn: endpoint.stateMachineArn(machine),
    input: JSON.stringify(input),
    ...(name ? { name } : {}),
  });
}

/** The task token the waitForTaskToken Lambda received for this order (and step). */
function tokenFor(orderId: string, step?: string): Promise<string> {
  return until(`a task token for ${orderId}`, () => {
    const call = calls.find(
      (c) =>
        c.arn === fn('request-payment') &&
        c.payload.orderId === orderId &&
        (!step || c.payload.step === step),
    );
    return typeof call?.payload.taskToken === 'string' ? call.payload.taskToken : undefined;
  });
}

describe('local Step Functions endpoint', () => {
  it('runs a Lambda ARN task and a Choice, with the context object and JSON-round-tripped results', async () => {
    const started = await start('reserve', { qty: 2 });
    expect(started.executionArn).toMatch(
      /^arn:aws:states:us-east-1:000000000000:execution:reserve:[0-9a-f-]{36}$/,
    );
    expect(started.startDate).toBeInstanceOf(Date);
    const done = await finished(started.executionArn!);
    expect(done.status).toBe('SUCCEEDED');
    expect(done.stopDate).toBeInstanceOf(Date);
    expect(JSON.parse(done.output!)).toEqual({
      qty: 2,
      reservation: { ok: true, executionId: started.executionArn, at: '1970-01-01T00:00:00.000Z' },
    });
    expect(calls).toContainEqual({
      arn: fn('reserve'),
      payload: { qty: 2, executionId: started.executionArn },
    });

    const failed = await finished((await start('reserve', { qty: 9 })).executionArn!);
    expect(failed).toMatchObject({ status: 'FAILED', error: 'OutOfStock', cause: 'not enough stock' });
    expect(failed.output).toBeUndefined();
  });

  it('shapes lambda:invoke results like AWS and expands a bare FunctionName to an ARN', async () => {
    const done = await finished((await start('price', { sku: 'A' })).executionArn!);
    expect(done.status).toBe('SUCCEEDED');
    const output = JSON.parse(done.output!);
    expect(output).toMatchObject({
      sku: 'A',
      quote: { price: 42, status: 200, version: '$LATEST', http: 200 },
    });
    expect(output.quote.requestId).toEqual(expect.any(String));
    expect(calls).toContainEqual({ arn: fn('price'), payload: { sku: 'A' } });
  });

  it('resumes a waitForTaskToken task on SendTaskSuccess; the token then is closed', async () => {
    const { executionArn } = await start('payment', { orderId: 'o-success' });
    const token = await tokenFor('o-success');
    expect(token.length).toBeGreaterThan(64);
    await sfn.sendTaskHeartbeat({ taskToken: token });
    expect((await sfn.describeExecution({ executionArn })).status).toBe('RUNNING');

    await sfn.sendTaskSuccess({ taskToken: token, output: JSON.stringify({ chargeId: 'ch_1' }) });
    const done = await finished(executionArn!);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({
      orderId: 'o-success',
      payment: { chargeId: 'ch_1' },
      confirmed: true,
    });

    await expect(sfn.sendTaskSuccess({ taskToken: token, output: '{}' })).rejects.toBeInstanceOf(
      TaskTimedOut,
    );
    await expect(sfn.sendTaskHeartbeat({ taskToken: token })).rejects.toBeInstanceOf(TaskTimedOut);
  });

  it('routes SendTaskFailure by error name to the compensation state', async () => {
    const { executionArn } = await start('payment', { orderId: 'o-declined' });
    const token = await tokenFor('o-declined');
    await sfn.sendTaskFailure({ taskToken: token, error: 'PaymentDeclined', cause: 'card declined' });
    const done = await finished(executionArn!);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({
      released: true,
      because: { Error: 'PaymentDeclined', Cause: 'card declined' },
    });
    await expect(sfn.sendTaskFailure({ taskToken: token, error: 'Again' })).rejects.toBeInstanceOf(
      TaskTimedOut,
    );
  });

  it('times out a waitForTaskToken task (States.Timeout caught) and closes its token', async () => {
    const { executionArn } = await start('payment-timeout', { orderId: 'o-slow' });
    const token = await tokenFor('o-slow');
    const done = await finished(executionArn!);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toMatchObject({
      outcome: 'timed-out',
      error: { Error: 'States.Timeout' },
    });
    await expect(sfn.sendTaskSuccess({ taskToken: token, output: '{}' })).rejects.toBeInstanceOf(
      TaskTimedOut,
    );

    const { events } = await sfn.getExecutionHistory({ executionArn });
    const timedOut = events!.find((event) => event.type === 'TaskTimedOut');
    expect(timedOut?.taskTimedOutEventDetails).toMatchObject({
      resourceType: 'lambda',
      resource: 'invoke.waitForTaskToken',
      error: 'States.Timeout',
    });
  });

  it('fails a waitForTaskToken task when its Lambda invocation fails, closing the token', async () => {
    const { executionArn } = await start('payment', { orderId: 'o-unreachable' });
    const token = await tokenFor('o-unreachable');
    const done = await finished(executionArn!);
    expect(done).toMatchObject({ status: 'FAILED', error: 'PaymentServiceDown' });
    expect(JSON.parse(done.cause!)).toMatchObject({ errorMessage: 'payment service unreachable' });
    await expect(sfn.sendTaskSuccess({ taskToken: token, output: '{}' })).rejects.toBeInstanceOf(
      TaskTimedOut,
    );
  });

  it('issues a distinct token to each waitForTaskToken task', async () => {
    const { executionArn } = await start('two-waits', { orderId: 'o-two' });
    const first = await tokenFor('o-two', 'first');
    await sfn.sendTaskSuccess({ taskToken: first, output: '"one"' });
    const second = await tokenFor('o-two', 'second');
    expect(second).not.toBe(first);
    await expect(sfn.sendTaskSuccess({ taskToken: first, output: '{}' })).rejects.toBeInstanceOf(
      TaskTimedOut,
    );
    await sfn.sendTaskSuccess({ taskToken: second, output: '"two"' });
    const done = await finished(executionArn!);
    expect(JSON.parse(done.output!)).toEqual({ orderId: 'o-two', first: 'one', second: 'two' });
  });

  it('rejects a token that was never issued with InvalidToken', async () => {
    await expect(sfn.sendTaskSuccess({ taskToken: 'not-a-token', output: '{}' })).rejects.toBeInstanceOf(
      InvalidToken,
    );
  });

  it('catches a Lambda error by its name; an uncaught one fails the execution', async () => {
    const caught = await finished(
      (await start('expiring', { kind: 'ReservationExpiredError' })).executionArn!,
    );
    expect(caught.status).toBe('SUCCEEDED');
    const output = JSON.parse(caught.output!);
    expect(output.error.Error).toBe('ReservationExpiredError');
    expect(JSON.parse(output.error.Cause)).toMatchObject({
      errorType: 'ReservationExpiredError',
      errorMessage: 'reservation r-1 expired',
    });

    const uncaught = await finished((await start('expiring', { kind: 'GatewayError' })).executionArn!);
    expect(uncaught).toMatchObject({ status: 'FAILED', error: 'GatewayError' });
    expect(JSON.parse(uncaught.cause!)).toMatchObject({ errorMessage: 'reservation r-1 expired' });
  });

  it('dispatches Task states nested in Parallel branches and Map processors locally', async () => {
    const done = await finished((await start('nested', { qty: 1, items: [1, 2, 3] })).executionArn!);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual([{ ok: true, at: '1970-01-01T00:00:00.000Z' }, [2, 4, 6]]);
  });

  it('fails an unsupported Resource with the uncatchable States.Runtime', async () => {
    const done = await finished((await start('unsupported', {})).executionArn!);
    expect(done).toMatchObject({ status: 'FAILED', error: 'States.Runtime' });
    expect(done.cause).toContain('arn:aws:states:::dynamodb:putItem');
  });

  it('is idempotent for the same name and input while RUNNING, ExecutionAlreadyExists otherwise', async () => {
    const first = await start('payment', { orderId: 'o-idem' }, 'order-o-idem');
    const again = await start('payment', { orderId: 'o-idem' }, 'order-o-idem');
    expect(again.executionArn).toBe(first.executionArn);
    expect(again.startDate).toEqual(first.startDate);
    await expect(start('payment', { orderId: 'other' }, 'order-o-idem')).rejects.toBeInstanceOf(
      ExecutionAlreadyExists,
    );

    await sfn.stopExecution({ executionArn: first.executionArn });
    await expect(start('payment', { orderId: 'o-idem' }, 'order-o-idem')).rejects.toBeInstanceOf(
      ExecutionAlreadyExists,
    );
  });

  it('answers unknown or malformed resources with the modeled exceptions', async () => {
    await expect(
      sfn.describeExecution({
        executionArn: 'arn:aws:states:us-east-1:000000000000:execution:payment:nope',
      }),
    ).rejects.toBeInstanceOf(ExecutionDoesNotExist);
    await expect(sfn.describeExecution({ executionArn: 'nope' })).rejects.toBeInstanceOf(InvalidArn);
    await expect(start('missing', {})).rejects.toBeInstanceOf(StateMachineDoesNotExist);
    await expect(
      sfn.startExecution({ stateMachineArn: endpoint.stateMachineArn('reserve'), input: '{not json' }),
    ).rejects.toBeInstanceOf(InvalidExecutionInput);
    await expect(start('reserve', {}, 'bad name')).rejects.toMatchObject({ name: 'InvalidName' });

    const response = await fetch(endpoint.url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.0',
        'X-Amz-Target': 'AWSStepFunctions.Bogus',
      },
      body: '{}',
    });
    expect(response.status).toBe(400);
    expect(response.headers.get('x-amzn-errortype')).toBe('UnknownOperationException');
    expect(await response.json()).toMatchObject({ __type: 'UnknownOperationException' });
  });

  it('stops an execution: ABORTED with error and cause, token closed, history ends ExecutionAborted', async () => {
    const { executionArn } = await start('payment', { orderId: 'o-stop' });
    const token = await tokenFor('o-stop');
    const stopped = await sfn.stopExecution({
      executionArn,
      error: 'OrderCancelled',
      cause: 'customer asked',
    });
    expect(stopped.stopDate).toBeInstanceOf(Date);
    expect(await sfn.describeExecution({ executionArn })).toMatchObject({
      status: 'ABORTED',
      error: 'OrderCancelled',
      cause: 'customer asked',
    });
    await expect(sfn.sendTaskSuccess({ taskToken: token, output: '{}' })).rejects.toBeInstanceOf(
      TaskTimedOut,
    );
    const { events } = await sfn.getExecutionHistory({ executionArn, reverseOrder: true, maxResults: 1 });
    expect(events).toHaveLength(1);
    expect(events![0]).toMatchObject({
      type: 'ExecutionAborted',
      executionAbortedEventDetails: { error: 'OrderCancelled', cause: 'customer asked' },
    });
    // Nothing runs on after the stop: Confirm is never invoked for this order.
    expect(calls.filter((c) => c.arn === fn('confirm') && c.payload.orderId === 'o-stop')).toEqual([]);
  });

  it('returns an AWS-shaped execution history', async () => {
    const { executionArn } = await start('reserve', { qty: 1 });
    await finished(executionArn!);
    const { events } = await sfn.getExecutionHistory({ executionArn });
    expect(events!.map((event) => event.type)).toEqual([
      'ExecutionStarted',
      'TaskStateEntered',
      'TaskStateExited',
      'ChoiceStateEntered',
      'ChoiceStateExited',
      'SucceedStateEntered',
      'SucceedStateExited',
      'ExecutionSucceeded',
    ]);
    expect(events!.map((event) => event.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(events!.map((event) => event.previousEventId)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(events![0]!.timestamp).toBeInstanceOf(Date);
    expect(events![0]!.executionStartedEventDetails).toMatchObject({ input: '{"qty":1}' });
    expect(events![1]!.stateEnteredEventDetails).toEqual({
      name: 'Reserve',
      input: '{"qty":1}',
      inputDetails: { truncated: false },
    });
    expect(JSON.parse(events![2]!.stateExitedEventDetails!.output!)).toMatchObject({
      reservation: { ok: true },
    });
    expect(JSON.parse(events![7]!.executionSucceededEventDetails!.output!)).toMatchObject({ qty: 1 });

    const failed = await start('reserve', { qty: 7 });
    await finished(failed.executionArn!);
    const history = await sfn.getExecutionHistory({ executionArn: failed.executionArn, reverseOrder: true });
    expect(history.events![0]).toMatchObject({
      type: 'ExecutionFailed',
      executionFailedEventDetails: { error: 'OutOfStock', cause: 'not enough stock' },
    });
  });

  it('lists executions by status and describes/lists state machines', async () => {
    const stateMachineArn = endpoint.stateMachineArn('reserve');
    const { executions } = await sfn.listExecutions({ stateMachineArn, statusFilter: 'FAILED' });
    expect(executions!.length).toBeGreaterThan(0);
    expect(executions!.every((execution) => execution.status === 'FAILED')).toBe(true);
    expect(executions![0]!.startDate).toBeInstanceOf(Date);

    const described = await sfn.describeStateMachine({ stateMachineArn });
    expect(described).toMatchObject({ name: 'reserve', type: 'STANDARD', status: 'ACTIVE' });
    expect(JSON.parse(described.definition!)).toEqual(reserveDefinition);
    const { stateMachines } = await sfn.listStateMachines({});
    expect(stateMachines!.map((machine) => machine.name)).toContain('payment');
  });
});

describe('RedriveExecution', () => {
  const callsTo = (name: string, orderId: string) =>
    calls.filter((c) => c.arn === fn(name) && c.payload.orderId === orderId);

  it('restarts a failed execution at the state that failed, with its input, once the cause is fixed', async () => {
    const { executionArn } = await start('redrive', { orderId: 'o-redrive' }, 'o-redrive');
    const failed = await finished(executionArn!);
    expect(failed).toMatchObject({
      status: 'FAILED',
      error: 'DownstreamUnavailable',
      redriveCount: 0,
      redriveStatus: 'REDRIVABLE',
    });
    expect(failed.redriveDate).toBeUndefined();

    fixedOrders.add('o-redrive');
    const redriven = await sfn.redriveExecution({ executionArn, clientToken: 'fix-1' });
    expect(redriven.redriveDate).toBeInstanceOf(Date);
    // The same client token answers the same redrive instead of refusing a running execution.
    expect(await sfn.redriveExecution({ executionArn, clientToken: 'fix-1' })).toMatchObject({
      redriveDate: redriven.redriveDate,
    });

    const done = await finished(executionArn!);
    expect(done).toMatchObject({
      executionArn,
      status: 'SUCCEEDED',
      startDate: failed.startDate,
      redriveCount: 1,
      redriveDate: redriven.redriveDate,
      redriveStatus: 'NOT_REDRIVABLE',
      redriveStatusReason: 'Execution is SUCCEEDED and cannot be redriven',
    });
    expect(done.error).toBeUndefined();
    // Prepare's result came through from the first attempt; $$.Execution.RedriveCount reads 1.
    expect(JSON.parse(done.output!)).toEqual({
      orderId: 'o-redrive',
      prepared: { preparedFor: 'o-redrive' },
      flaky: { ok: true, redriveCount: 1 },
    });
    expect(callsTo('prepare', 'o-redrive')).toHaveLength(1);
    expect(callsTo('flaky', 'o-redrive')).toHaveLength(2);

    const { events } = await sfn.getExecutionHistory({ executionArn });
    const types = events!.map((event) => event.type);
    expect(types.filter((type) => type === 'ExecutionStarted')).toHaveLength(1);
    const redrivenAt = types.indexOf('ExecutionRedriven');
    expect(types.slice(redrivenAt - 1)).toEqual([
      'ExecutionFailed',
      'ExecutionRedriven',
      'TaskStateEntered',
      'TaskStateExited',
      'PassStateEntered',
      'PassStateExited',
      'ExecutionSucceeded',
    ]);
    expect(events![redrivenAt]).toMatchObject({
      id: redrivenAt + 1,
      previousEventId: redrivenAt,
      executionRedrivenEventDetails: { redriveCount: 1 },
    });
    expect(events![redrivenAt + 1]!.stateEnteredEventDetails).toMatchObject({ name: 'Flaky' });

    const stateMachineArn = endpoint.stateMachineArn('redrive');
    const redrivenList = await sfn.listExecutions({ stateMachineArn, redriveFilter: 'REDRIVEN' });
    expect(redrivenList.executions).toEqual([
      expect.objectContaining({ executionArn, redriveCount: 1, redriveDate: redriven.redriveDate }),
    ]);
    const notRedriven = await sfn.listExecutions({ stateMachineArn, redriveFilter: 'NOT_REDRIVEN' });
    expect(notRedriven.executions!.map((execution) => execution.executionArn)).not.toContain(executionArn);
  });

  it('refuses a SUCCEEDED or RUNNING execution with ExecutionNotRedrivable', async () => {
    const succeeded = await start('reserve', { qty: 1 });
    await finished(succeeded.executionArn!);
    const refusal = sfn.redriveExecution({ executionArn: succeeded.executionArn });
    await expect(refusal).rejects.toBeInstanceOf(ExecutionNotRedrivable);
    await expect(refusal).rejects.toThrow(/SUCCEEDED/);

    const running = await start('payment', { orderId: 'o-redrive-running' });
    const token = await tokenFor('o-redrive-running');
    await expect(sfn.redriveExecution({ executionArn: running.executionArn })).rejects.toBeInstanceOf(
      ExecutionNotRedrivable,
    );
    expect(await sfn.describeExecution({ executionArn: running.executionArn })).toMatchObject({
      status: 'RUNNING',
      redriveCount: 0,
      redriveStatus: 'NOT_REDRIVABLE',
      redriveStatusReason: 'Execution is RUNNING and cannot be redriven',
    });
    await sfn.sendTaskSuccess({ taskToken: token, output: '{}' });
    await finished(running.executionArn!);

    await expect(
      sfn.redriveExecution({
        executionArn: 'arn:aws:states:us-east-1:000000000000:execution:redrive:never-started',
      }),
    ).rejects.toBeInstanceOf(ExecutionDoesNotExist);
  });

  it('redrives an aborted execution: the waiting task runs again with a fresh token', async () => {
    const { executionArn } = await start('payment', { orderId: 'o-redrive-stopped' });
    const first = await tokenFor('o-redrive-stopped');
    await sfn.stopExecution({ executionArn, cause: 'operator' });
    expect((await sfn.describeExecution({ executionArn })).redriveStatus).toBe('REDRIVABLE');

    await sfn.redriveExecution({ executionArn });
    const second = await until('a second task token', () => {
      const tokens = callsTo('request-payment', 'o-redrive-stopped').map((c) => c.payload.taskToken);
      return tokens.length === 2 ? String(tokens[1]) : undefined;
    });
    expect(second).not.toBe(first);
    await expect(sfn.sendTaskSuccess({ taskToken: first, output: '{}' })).rejects.toBeInstanceOf(
      TaskTimedOut,
    );
    await sfn.sendTaskSuccess({ taskToken: second, output: JSON.stringify({ chargeId: 'ch_2' }) });
    const done = await finished(executionArn!);
    expect(done).toMatchObject({ status: 'SUCCEEDED', redriveCount: 1 });
    expect(JSON.parse(done.output!)).toMatchObject({ payment: { chargeId: 'ch_2' }, confirmed: true });
    expect(callsTo('confirm', 'o-redrive-stopped')).toHaveLength(1);
  });

  it('refuses once the redrive window has passed', async () => {
    const local = await startStepFunctionsEndpoint({
      stateMachines: [{ name: 'redrive', definition: redriveDefinition }],
      invoke,
      redriveWindowSeconds: 0.05,
    });
    const client = new SFN({
      endpoint: local.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
    onTestFinished(async () => {
      client.destroy();
      await local.close();
    });
    const { executionArn } = await client.startExecution({
      stateMachineArn: local.stateMachineArn('redrive'),
      input: JSON.stringify({ orderId: 'o-redrive-late' }),
    });
    await until('the redrive window to pass', async () => {
      const described = await client.describeExecution({ executionArn });
      return described.redriveStatusReason === 'Execution redrivable period exceeded' ? true : undefined;
    });
    await expect(client.redriveExecution({ executionArn })).rejects.toBeInstanceOf(ExecutionNotRedrivable);
  });
});

describe('ListExecutions paging', () => {
  it('pages newest first with nextToken, and rejects a token it did not issue', async () => {
    const stateMachineArn = endpoint.stateMachineArn('listing');
    const started: string[] = [];
    for (let i = 0; i < 5; i += 1) started.push((await start('listing', { i })).executionArn!);

    const first = await sfn.listExecutions({ stateMachineArn, maxResults: 2 });
    expect(first.executions).toHaveLength(2);
    expect(first.nextToken).toEqual(expect.any(String));

    const listed: string[] = [];
    for await (const page of paginateListExecutions({ client: sfn, pageSize: 2 }, { stateMachineArn })) {
      expect(page.executions!.length).toBeLessThanOrEqual(2);
      listed.push(...page.executions!.map((execution) => execution.executionArn!));
    }
    expect([...listed].sort()).toEqual([...started].sort());
    expect(new Set(listed).size).toBe(5);

    await expect(
      sfn.listExecutions({ stateMachineArn, nextToken: 'not-a-token-of-ours' }),
    ).rejects.toBeInstanceOf(InvalidToken);
  });
});

describe('startStepFunctionsEndpoint', () => {
  it('rejects an invalid definition at start', async () => {
    await expect(
      startStepFunctionsEndpoint({
        stateMachines: [{ name: 'broken', definition: { StartAt: 'Nowhere', States: {} } }],
        invoke,
      }),
    ).rejects.toThrow(/invalid/i);
  });

  it('close() aborts waiting executions and leaves no timers behind', async () => {
    // Watch the task-timeout timers themselves rather than counting every timer in the process: sockets
    // and the SDK start and stop timers of their own at any moment.
    const taskTimeoutMs = 300_000;
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const clearTimeoutSpy = vi.spyOn(globalThis, 'clearTimeout');
    onTestFinished(() => {
      setTimeoutSpy.mockRestore();
      clearTimeoutSpy.mockRestore();
    });
    const taskTimers = () =>
      setTimeoutSpy.mock.calls.flatMap((call, index) =>
        call[1] === taskTimeoutMs ? [setTimeoutSpy.mock.results[index]?.value] : [],
      );
    const local = await startStepFunctionsEndpoint({
      stateMachines: [{ name: 'payment', definition: paymentDefinition(300) }],
      invoke,
    });
    const client = new SFN({
      endpoint: local.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
      maxAttempts: 1,
    });
    await client.startExecution({
      stateMachineArn: local.stateMachineArn('payment'),
      input: JSON.stringify({ orderId: 'o-close' }),
    });
    await tokenFor('o-close');
    const started = taskTimers();
    expect(started.length).toBeGreaterThan(0);
    client.destroy();
    await local.close();
    const cleared = new Set(clearTimeoutSpy.mock.calls.map((call) => call[0]));
    expect(started.filter((timer) => !cleared.has(timer))).toEqual([]);
    await expect(fetch(local.url, { method: 'POST' })).rejects.toThrow();
  });
});
