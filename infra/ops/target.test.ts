import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  removeLocalRuntimeInfo,
  writeLocalRuntimeInfo,
  type LocalRuntimeInfo,
} from '../local/runtime-info.ts';
import { clientConfig, OpsTargetError, requireStripe, resolveOpsTarget } from './target.ts';

let directory: string;
const file = (name: string) => join(directory, name);

const info = (pid: number): LocalRuntimeInfo => ({
  pid,
  apiUrl: 'http://127.0.0.1:3000',
  natsUrl: 'nats://127.0.0.1:4222',
  stripeUrl: 'http://127.0.0.1:12111',
  stepFunctionsUrl: 'http://127.0.0.1:8083',
  dynamodbEndpoint: 'http://127.0.0.1:8000',
  stateMachineArn: 'arn:aws:states:us-east-1:000000000000:stateMachine:SagaStateMachine',
  tableNames: { orders: 'orders-local', inventory: 'inventory-local', payments: 'payments-local' },
  startedAt: '2026-01-01T00:00:00.000Z',
});

const outputs = {
  OrderSaga: {
    OrdersTableName: 'OrderSaga-Orders',
    InventoryTableName: 'OrderSaga-Inventory',
    PaymentsTableName: 'OrderSaga-Payments',
    StateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:Saga',
    HttpUrlEF4F1CA1: 'https://abc.execute-api.eu-west-1.amazonaws.com/',
  },
};

beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'ops-target-'));
});

afterAll(async () => {
  if (directory) await rm(directory, { recursive: true, force: true });
});

describe('resolveOpsTarget', () => {
  it('targets a running npm start from its runtime info file', async () => {
    await writeLocalRuntimeInfo(info(process.pid), file('running.json'));
    const target = resolveOpsTarget({}, {}, { runtimeInfoFile: file('running.json') });
    expect(target).toMatchObject({
      kind: 'local',
      stepFunctions: { endpoint: 'http://127.0.0.1:8083', stateMachineArn: info(1).stateMachineArn },
      dynamodb: { endpoint: 'http://127.0.0.1:8000' },
      stripe: { apiUrl: 'http://127.0.0.1:12111', apiKey: expect.stringMatching(/^sk_test_/) },
      tableNames: info(1).tableNames,
      apiUrl: 'http://127.0.0.1:3000',
    });
    expect(clientConfig(target, 'stepFunctions')).toEqual({
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
      endpoint: 'http://127.0.0.1:8083',
    });
  });

  it('says npm start is not running when the file is missing or its process is gone', async () => {
    expect(() => resolveOpsTarget({}, {}, { runtimeInfoFile: file('absent.json') })).toThrow(
      /^npm start is not running \(no .*absent\.json\)/,
    );
    // A pid that cannot be running: above Linux's pid_max.
    await writeLocalRuntimeInfo(info(2 ** 30), file('stale.json'));
    expect(() => resolveOpsTarget({}, {}, { runtimeInfoFile: file('stale.json') })).toThrow(
      /npm start is not running \(.*stale\.json is left over from pid 1073741824\)/,
    );
  });

  it('removes the runtime info file only for the process that wrote it', async () => {
    await writeLocalRuntimeInfo(info(process.pid), file('owned.json'));
    await removeLocalRuntimeInfo(process.pid + 1, file('owned.json'));
    expect(() => resolveOpsTarget({}, {}, { runtimeInfoFile: file('owned.json') })).not.toThrow();
    await removeLocalRuntimeInfo(process.pid, file('owned.json'));
    expect(() => resolveOpsTarget({}, {}, { runtimeInfoFile: file('owned.json') })).toThrow(OpsTargetError);
  });

  it('targets a deployed stack from its CDK outputs, with the Stripe key from the environment', async () => {
    await writeFile(file('outputs.json'), JSON.stringify(outputs));
    const target = resolveOpsTarget({ outputs: file('outputs.json') }, { STRIPE_SECRET_KEY: 'sk_live_x' });
    expect(target).toEqual({
      kind: 'aws',
      aws: { region: 'eu-west-1' },
      stepFunctions: { stateMachineArn: outputs.OrderSaga.StateMachineArn },
      dynamodb: {},
      stripe: { apiKey: 'sk_live_x' },
      tableNames: {
        orders: 'OrderSaga-Orders',
        inventory: 'OrderSaga-Inventory',
        payments: 'OrderSaga-Payments',
      },
      apiUrl: 'https://abc.execute-api.eu-west-1.amazonaws.com',
    });
    expect(clientConfig(target, 'stepFunctions')).toEqual({ region: 'eu-west-1' });
    expect(requireStripe(target)).toEqual({ apiKey: 'sk_live_x' });
    const withoutKey = resolveOpsTarget({ outputs: file('outputs.json') }, {});
    expect(() => requireStripe(withoutKey)).toThrow(/STRIPE_SECRET_KEY is not set/);
  });

  it('names what is missing from a CDK outputs file', async () => {
    const { StateMachineArn: _, ...older } = outputs.OrderSaga;
    await writeFile(file('older.json'), JSON.stringify({ OrderSaga: older }));
    expect(() => resolveOpsTarget({ outputs: file('older.json') }, {})).toThrow(
      /lacks the output\(s\) StateMachineArn/,
    );
    await writeFile(file('two.json'), JSON.stringify({ A: outputs.OrderSaga, B: outputs.OrderSaga }));
    expect(() => resolveOpsTarget({ outputs: file('two.json') }, {})).toThrow(/pick one with --stack/);
    expect(resolveOpsTarget({ outputs: file('two.json'), stack: 'B' }, {}).kind).toBe('aws');
    expect(() => resolveOpsTarget({ outputs: file('nope.json') }, {})).toThrow(/no CDK outputs file/);
  });
});
