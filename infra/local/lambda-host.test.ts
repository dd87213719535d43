import { SFN, type DescribeExecutionOutput } from '@aws-sdk/client-sfn';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { faultInjector, type FaultContext, type FaultInjectorOptions } from './faults.ts';
import { startLambdaHost, type LambdaHost } from './lambda-host.ts';
import { startStepFunctionsEndpoint } from './step-functions.ts';

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
  const lambdas: LambdaHost = await startLambdaHost({
    projectRoot: root,
    functions: [
      { logicalId: 'Reserve', entry: 'handler.mjs', environment: {}, timeoutSeconds: 3, memorySize: 128 },
    ],
    baseEnvironment: {},
    region: 'us-east-1',
    accountId: '000000000000',
    faults,
  });
  return { lambdas, lines, faults };
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
    const { lambdas, lines, faults } = await host({ 'lambda.throttle': 1 });
    const before = writes().length;

    const error = await rejection(lambdas.invokeTask('Reserve', { id: 'throttled' }, task));

    expect(error).toMatchObject({ name: 'Lambda.TooManyRequestsException', message: 'Rate Exceeded.' });
    expect(writes()).toHaveLength(before);
    expect(lines).toEqual(['fault lambda.throttle: ReserveStock (execution order-1)']);
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
