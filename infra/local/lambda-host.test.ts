import { SFN, type DescribeExecutionOutput } from '@aws-sdk/client-sfn';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultInjector, type FaultContext, type FaultInjectorOptions } from './faults.ts';
import { orderIdOf, startLambdaHost, type LambdaHost } from './lambda-host.ts';
import { startStepFunctionsEndpoint } from './step-functions/index.ts';

/** What the handler saw: its writes, as a saga handler's writes commit before it returns. */
const RECORDED = 'lambdaHostTestWrites';
const writes = () => ((globalThis as Record<string, unknown>)[RECORDED] ??= []) as unknown[];

const HANDLER = `
export const handler = async (event) => {
  if (event?.fail) {
    const error = new Error('the handler failed');
    error.name = 'HandlerFailed';
    throw error;
  }
  (globalThis[${JSON.stringify(RECORDED)}] ??= []).push(event);
  return { handled: event };
};
`;

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'lambda-host-test-'));
  await writeFile(join(root, 'handler.mjs'), HANDLER);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function host(spec: FaultInjectorOptions['spec'], filter?: FaultInjectorOptions['filter']) {
  const lines: string[] = [];
  const faults = faultInjector({
    spec,
    seed: 1,
    log: (line) => lines.push(line),
    ...(filter ? { filter } : {}),
  });
  const failures: string[] = [];
  const lambdas: LambdaHost = await startLambdaHost({
    projectRoot: root,
    functions: [
      { logicalId: 'Reserve', entry: 'handler.mjs', environment: {}, timeoutSeconds: 3, memorySize: 128 },
    ],
    baseEnvironment: {},
    region: 'us-east-1',
    accountId: '000000000000',
    faults,
    log: (line) => failures.push(line),
  });
  return { lambdas, lines, faults, failures };
}

const EXECUTION = 'arn:aws:states:us-east-1:000000000000:execution:Saga:order-1';
const task = { stateName: 'ReserveStock', executionArn: EXECUTION };

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Error) return error;
    throw error;
  }
  throw new Error('expected the invocation to fail');
}

describe('Lambda faults on saga task invocations', () => {
  it('lambda.throttle refuses before the handler runs, as Lambda.TooManyRequestsException', async () => {
    const { lambdas, lines, faults, failures } = await host({ 'lambda.throttle': 1 });
    const before = writes().length;

    const error = await rejection(lambdas.invokeTask('Reserve', { id: 'throttled', orderId: 'o-1' }, task));

    expect(error).toMatchObject({ name: 'Lambda.TooManyRequestsException', message: 'Rate Exceeded.' });
    expect(writes()).toHaveLength(before);
    expect(lines).toEqual(['fault lambda.throttle: ReserveStock (execution order-1)']);
    // The failed invocation's one line, as Lambda's log would show it.
    expect(failures).toEqual([
      'lambda Reserve failed (task ReserveStock, execution order-1, order o-1): Lambda.TooManyRequestsException: Rate Exceeded.',
    ]);
    expect(lambdas.reported(error)).toBe(true);
    expect(faults.counts()['lambda.throttle']).toBe(1);
  });

  it('lambda.lost-response lets the handler finish, then fails the invocation with Sandbox.Timedout', async () => {
    const { lambdas, lines } = await host({ 'lambda.lost-response': 1 });

    const error = await rejection(lambdas.invokeTask('Reserve', { id: 'lost' }, task));

    expect(error).toMatchObject({ name: 'Sandbox.Timedout' });
    expect(error.message).toMatch(/Task timed out after 3 seconds/);
    expect(writes()).toContainEqual({ id: 'lost' });
    expect(lines).toEqual(['fault lambda.lost-response: ReserveStock (execution order-1)']);
  });

  it('leaves a failing handler its own error', async () => {
    const { lambdas } = await host({ 'lambda.lost-response': 1 });
    const error = await rejection(lambdas.invokeTask('Reserve', { fail: true }, task));
    expect(error.name).toBe('HandlerFailed');
  });

  it('never touches invocations that are not saga tasks (HTTP API, stream pollers, schedules)', async () => {
    const { lambdas, lines } = await host({ 'lambda.throttle': 1, 'lambda.lost-response': 1 });
    await expect(lambdas.invoke('Reserve', { id: 'direct' })).resolves.toEqual({ handled: { id: 'direct' } });
    expect(lines).toEqual([]);
  });

  it('applies only where the filter says, e.g. one saga state', async () => {
    const onlyReserveStock = (_: unknown, context: FaultContext) => context.stateName === 'ReserveStock';
    const { lambdas } = await host({ 'lambda.throttle': 1 }, onlyReserveStock);
    await expect(
      lambdas.invokeTask('Reserve', { id: 'other state' }, { ...task, stateName: 'ConfirmStock' }),
    ).resolves.toEqual({ handled: { id: 'other state' } });
    expect((await rejection(lambdas.invokeTask('Reserve', { id: 'x' }, task))).name).toBe(
      'Lambda.TooManyRequestsException',
    );
  });

  it('reach the state machine through the Step Functions endpoint, which names the state and execution', async () => {
    const attempts: FaultContext[] = [];
    const { lambdas, lines } = await host(
      { 'lambda.throttle': 1 },
      // The first attempt only, so that the state's Retry then succeeds.
      (_, context) => attempts.push(context) === 1,
    );
    const endpoint = await startStepFunctionsEndpoint({
      stateMachines: [
        {
          name: 'Saga',
          definition: {
            StartAt: 'ReserveStock',
            States: {
              ReserveStock: {
                Type: 'Task',
                Resource: 'arn:aws:states:::lambda:invoke',
                Parameters: { FunctionName: 'Reserve', 'Payload.$': '$' },
                OutputPath: '$.Payload',
                Retry: [
                  { ErrorEquals: ['Lambda.TooManyRequestsException'], IntervalSeconds: 1, MaxAttempts: 2 },
                ],
                End: true,
              },
            },
          },
        },
      ],
      invoke: (arn, payload, invocation) => lambdas.invokeTask(arn, payload, invocation),
    });
    const sfn = new SFN({
      endpoint: endpoint.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    try {
      const { executionArn } = await sfn.startExecution({
        stateMachineArn: endpoint.stateMachineArn('Saga'),
        name: 'order-2',
        input: JSON.stringify({ id: 'via-sfn' }),
      });
      const deadline = Date.now() + 10_000;
      let execution: DescribeExecutionOutput;
      do {
        execution = await sfn.describeExecution({ executionArn });
        if (execution.status !== 'RUNNING') break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      } while (Date.now() < deadline);

      expect(execution.status).toBe('SUCCEEDED');
      expect(JSON.parse(execution.output ?? 'null')).toEqual({ handled: { id: 'via-sfn' } });
      expect(lines).toEqual(['fault lambda.throttle: ReserveStock (execution order-2)']);
      expect(attempts).toEqual([
        { stateName: 'ReserveStock', executionArn, functionName: 'Reserve' },
        { stateName: 'ReserveStock', executionArn, functionName: 'Reserve' },
      ]);
    } finally {
      sfn.destroy();
      await endpoint.close();
    }
  });
});

describe('logs through the Lambda host', () => {
  /** A handler of `service` that logs one line, after an await, so that invocations interleave. */
  const loggingHandler = (loggerUrl: string) => `
import { logger } from ${JSON.stringify(loggerUrl)};
export const handler = async (event) => {
  await new Promise((resolve) => setTimeout(resolve, event.delayMs ?? 0));
  logger.info('handled', { step: event.step });
  if (event.fail) throw new Error('boom');
  return null;
};
`;

  it('each handler logs with its own service name, the function and the order, and a failure prints one line', async () => {
    const loggerUrl = pathToFileURL(join(import.meta.dirname, '..', '..', 'shared', 'logger.ts')).href;
    await writeFile(join(root, 'logging.mjs'), loggingHandler(loggerUrl));
    const failures: string[] = [];
    const lambdas = await startLambdaHost({
      projectRoot: root,
      functions: [
        {
          logicalId: 'CreateOrder',
          entry: 'logging.mjs',
          environment: { POWERTOOLS_SERVICE_NAME: 'orders', POWERTOOLS_LOG_LEVEL: 'INFO' },
          timeoutSeconds: 3,
          memorySize: 128,
        },
        {
          logicalId: 'StripeWebhook',
          entry: 'logging.mjs',
          environment: { POWERTOOLS_SERVICE_NAME: 'payments', POWERTOOLS_LOG_LEVEL: 'INFO' },
          timeoutSeconds: 3,
          memorySize: 128,
        },
      ],
      baseEnvironment: {},
      region: 'us-east-1',
      accountId: '000000000000',
      log: (line) => failures.push(line),
    });

    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      written.push(String(chunk));
      return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
    }) as typeof process.stdout.write;
    try {
      await Promise.all([
        // The slower one starts first: each line must still carry its own invocation's keys.
        lambdas.invoke('CreateOrder', { step: 'create', orderId: 'o-1', delayMs: 30 }),
        lambdas.invoke('StripeWebhook', {
          routeKey: 'POST /payments/webhook',
          body: JSON.stringify({ data: { object: { metadata: { orderId: 'o-2' } } } }),
        }),
        lambdas
          .invokeTask(
            'CreateOrder',
            { step: 'task', orderId: 'o-3', fail: true },
            {
              stateName: 'ApplyStep',
              executionArn: 'arn:aws:states:us-east-1:000000000000:execution:Saga:o-3',
            },
          )
          .catch(() => undefined),
      ]);
    } finally {
      process.stdout.write = write;
    }

    const logged = written
      .flatMap((chunk) => chunk.split('\n'))
      .filter((line) => line.includes('"handled"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(logged).toHaveLength(3);
    const byStep = (step: string | undefined) => logged.find((line) => line.step === step);
    expect(byStep('create')).toMatchObject({
      service: 'orders',
      function_name: 'CreateOrder',
      orderId: 'o-1',
    });
    expect(byStep(undefined)).toMatchObject({
      service: 'payments',
      function_name: 'StripeWebhook',
      orderId: 'o-2',
    });
    expect(byStep('task')).toMatchObject({ service: 'orders', function_name: 'CreateOrder', orderId: 'o-3' });
    expect(new Set(logged.map((line) => line.function_request_id)).size).toBe(3);

    expect(failures).toEqual([
      'lambda CreateOrder failed (task ApplyStep, execution o-3, order o-3): Error: boom',
    ]);
  });

  it('finds the order in the events the runtime delivers', () => {
    expect(orderIdOf({ orderId: 'o-task' })).toBe('o-task');
    expect(orderIdOf({ routeKey: 'GET /orders/{orderId}', pathParameters: { orderId: 'o-path' } })).toBe(
      'o-path',
    );
    expect(orderIdOf({ queryStringParameters: { orderId: 'o-query' } })).toBe('o-query');
    const record = (pk: string) => ({ dynamodb: { NewImage: { pk: { S: pk } } } });
    expect(orderIdOf({ Records: [record('ORDER#o-1'), record('ORDER#o-1')] })).toBe('o-1');
    expect(orderIdOf({ Records: [record('ORDER#o-1'), record('ORDER#o-2')] })).toBeUndefined();
    expect(
      orderIdOf({ Records: [{ dynamodb: { NewImage: { orderId: { S: 'o-9' }, pk: { S: 'RES#1' } } } }] }),
    ).toBe('o-9');
    expect(orderIdOf({ body: 'not json' })).toBeUndefined();
    expect(orderIdOf(null)).toBeUndefined();
  });
});

describe('metrics through the Lambda host', () => {
  it("hands each invocation's EMF to onMetrics, with its own function's service and namespace", async () => {
    const shared = (file: string) =>
      pathToFileURL(join(import.meta.dirname, '..', '..', 'shared', file)).href;
    await writeFile(
      join(root, 'counting.mjs'),
      `
import { eventHandler } from ${JSON.stringify(shared('lambda-edge.ts'))};
import { addCount } from ${JSON.stringify(shared('metrics.ts'))};
export const handler = eventHandler(async (event) => {
  addCount('OrdersPlaced');
  // The slower invocation flushes last: the other's flush must not take its metrics.
  await new Promise((resolve) => setTimeout(resolve, event.delayMs ?? 0));
  addCount('OrdersPlaced', { result: event.result });
  return null;
});
`,
    );
    const emf: string[] = [];
    const lambdas = await startLambdaHost({
      projectRoot: root,
      functions: [
        {
          logicalId: 'CreateOrder',
          entry: 'counting.mjs',
          environment: { POWERTOOLS_SERVICE_NAME: 'orders', POWERTOOLS_METRICS_NAMESPACE: 'Test' },
          timeoutSeconds: 3,
          memorySize: 128,
        },
        {
          logicalId: 'StripeWebhook',
          entry: 'counting.mjs',
          environment: { POWERTOOLS_SERVICE_NAME: 'payments' },
          timeoutSeconds: 3,
          memorySize: 128,
        },
      ],
      baseEnvironment: { POWERTOOLS_LOG_LEVEL: 'SILENT' },
      region: 'us-east-1',
      accountId: '000000000000',
      onMetrics: (line) => emf.push(line),
    });

    await Promise.all([
      lambdas.invoke('CreateOrder', { delayMs: 30, result: 'slow' }),
      lambdas.invoke('StripeWebhook', { result: 'fast' }),
    ]);

    const documents = emf.map((line) => JSON.parse(line) as Record<string, unknown>);
    const namespaceOf = (document: Record<string, unknown>) =>
      (document._aws as { CloudWatchMetrics: Array<{ Namespace: string }> }).CloudWatchMetrics[0]!.Namespace;
    const of = (service: string) => documents.filter((document) => document.service === service);
    expect(of('orders')).toEqual([
      expect.objectContaining({ result: 'slow', OrdersPlaced: 1 }),
      expect.objectContaining({ OrdersPlaced: [1, 1] }),
    ]);
    expect(of('payments')).toEqual([
      expect.objectContaining({ result: 'fast', OrdersPlaced: 1 }),
      expect.objectContaining({ OrdersPlaced: [1, 1] }),
    ]);
    expect(documents).toHaveLength(4);
    expect(of('orders').map(namespaceOf)).toEqual(['Test', 'Test']);
    expect(of('payments').map(namespaceOf)).toEqual(['OrderSaga', 'OrderSaga']);
  });
});
