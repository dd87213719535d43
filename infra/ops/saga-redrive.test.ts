import { SFN, type DescribeExecutionOutput } from '@aws-sdk/client-sfn';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeLocalRuntimeInfo } from '../local/runtime-info.ts';
import { startStepFunctionsEndpoint, type StepFunctionsEndpoint } from '../local/step-functions/index.ts';
import { runSagaRedrive } from './saga-redrive.ts';

/** Orders whose downstream has been fixed; until then their Fulfil step fails. */
const fixed = new Set<string>();
const invocations: Array<{ fn: string; orderId: string }> = [];

/** Reserve → Fulfil (fails until the order is fixed; no Retry) → Done: a saga-shaped failure. */
const definition = {
  StartAt: 'Reserve',
  States: {
    Reserve: {
      Type: 'Task',
      Resource: 'arn:aws:lambda:us-east-1:000000000000:function:reserve',
      ResultPath: '$.reserved',
      Next: 'Fulfil',
    },
    Fulfil: {
      Type: 'Task',
      Resource: 'arn:aws:lambda:us-east-1:000000000000:function:fulfil',
      ResultPath: '$.fulfilled',
      Next: 'Done',
    },
    Done: { Type: 'Succeed' },
  },
};

let endpoint: StepFunctionsEndpoint;
let sfn: SFN;
let directory: string;
let runtimeInfoFile: string;

beforeAll(async () => {
  endpoint = await startStepFunctionsEndpoint({
    stateMachines: [{ name: 'Saga', definition }],
    invoke: async (arn, payload) => {
      const { orderId } = payload as { orderId: string };
      const fn = arn.split(':').at(-1)!;
      invocations.push({ fn, orderId });
      if (fn === 'fulfil' && !fixed.has(orderId)) {
        throw Object.assign(new Error('the warehouse is down'), { name: 'WarehouseUnavailable' });
      }
      return { ok: true };
    },
  });
  sfn = new SFN({
    endpoint: endpoint.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    maxAttempts: 1,
  });
  directory = await mkdtemp(join(tmpdir(), 'saga-redrive-'));
  runtimeInfoFile = join(directory, 'local-runtime.json');
  await writeLocalRuntimeInfo(
    {
      pid: process.pid,
      apiUrl: 'http://127.0.0.1:1',
      natsUrl: 'nats://127.0.0.1:2',
      stripeUrl: 'http://127.0.0.1:3',
      stepFunctionsUrl: endpoint.url,
      dynamodbEndpoint: 'http://127.0.0.1:4',
      stateMachineArn: endpoint.stateMachineArn('Saga'),
      tableNames: { orders: 'orders', inventory: 'inventory', payments: 'payments' },
      startedAt: new Date().toISOString(),
    },
    runtimeInfoFile,
  );
});

afterAll(async () => {
  sfn?.destroy();
  await endpoint?.close();
  if (directory) await rm(directory, { recursive: true, force: true });
});

async function run(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runSagaRedrive(
    argv,
    {},
    {
      out: (line) => out.push(line),
      err: (line) => err.push(line),
      runtimeInfoFile,
    },
  );
  return { code, out, err };
}

async function settled(orderId: string, redriveCount: number): Promise<DescribeExecutionOutput> {
  const executionArn = `arn:aws:states:us-east-1:000000000000:execution:Saga:${orderId}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const described = await sfn.describeExecution({ executionArn });
    if (described.status !== 'RUNNING' && described.redriveCount === redriveCount) return described;
    if (Date.now() > deadline) throw new Error(`${orderId} did not settle: ${JSON.stringify(described)}`);
    await sleep(20);
  }
}

async function startOrder(orderId: string) {
  await sfn.startExecution({
    stateMachineArn: endpoint.stateMachineArn('Saga'),
    name: orderId,
    input: JSON.stringify({ orderId }),
  });
  return settled(orderId, 0);
}

describe('npm run saga:redrive', () => {
  it('--failed redrives every failed execution from the step that failed, one line each', async () => {
    expect((await startOrder('o-fixed')).status).toBe('FAILED');
    expect((await startOrder('o-still-broken')).status).toBe('FAILED');
    fixed.add('o-fixed');

    const dryRun = await run('--failed', '--dry-run');
    expect(dryRun.code).toBe(0);
    expect(dryRun.out.sort()).toEqual([
      'o-fixed  FAILED  redrivable (dry run)',
      'o-still-broken  FAILED  redrivable (dry run)',
    ]);

    const { code, out, err } = await run('--failed');
    expect(err).toEqual([]);
    expect(code).toBe(0);
    expect(out.sort()).toEqual([
      'o-fixed  FAILED  redriven (redrive 1)',
      'o-still-broken  FAILED  redriven (redrive 1)',
    ]);

    expect(await settled('o-fixed', 1)).toMatchObject({ status: 'SUCCEEDED' });
    expect(await settled('o-still-broken', 1)).toMatchObject({ status: 'FAILED' });
    // Reserve ran once per order: the redrive resumed at Fulfil.
    expect(invocations.filter((call) => call.fn === 'reserve' && call.orderId === 'o-fixed')).toHaveLength(1);
  });

  it('redrives the orders named, and exits 1 when one is refused', async () => {
    fixed.add('o-still-broken');
    const { code, out } = await run('o-still-broken', 'o-fixed', 'o-unknown');
    expect(code).toBe(1);
    expect(out).toEqual([
      'o-still-broken  FAILED  redriven (redrive 2)',
      expect.stringMatching(/^o-fixed {2}SUCCEEDED {2}refused: .*SUCCEEDED and cannot be redriven/),
      'o-unknown  -  refused: no execution for this order',
    ]);
    expect(await settled('o-still-broken', 2)).toMatchObject({ status: 'SUCCEEDED' });

    const nothing = await run('--failed', '--status', 'TIMED_OUT');
    expect(nothing).toMatchObject({ code: 0, out: [expect.stringMatching(/^no TIMED_OUT executions/)] });
  });

  it('says in one line that npm start is not running, and rejects bad usage', async () => {
    const missing = await runSagaRedrive(
      ['--failed'],
      {},
      {
        out: () => {},
        err: (line) => expect(line).toMatch(/^saga:redrive: npm start is not running \(no .*\)/),
        runtimeInfoFile: join(directory, 'absent.json'),
      },
    );
    expect(missing).toBe(2);

    expect((await run()).code).toBe(2);
    expect((await run('o-1', '--failed')).code).toBe(2);
    expect((await run('--failed', '--status', 'SUCCEEDED')).code).toBe(2);
  });
});
