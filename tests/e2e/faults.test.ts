import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeExecutionCommand, ListStateMachinesCommand, SFNClient } from '@aws-sdk/client-sfn';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  faultInjector,
  type FaultContext,
  type FaultName,
  type FaultSpec,
} from '../../infra/local/faults.ts';
import type { LocalRuntime } from '../../infra/local/runtime.ts';
import { runtimeInfoOf, writeLocalRuntimeInfo } from '../../infra/local/runtime-info.ts';
import { runSagaRedrive } from '../../infra/ops/saga-redrive.ts';
import { pollUntil } from '../support/poll.ts';
import { shop, type Shop } from '../support/shop.ts';
import { startTestRuntime } from '../support/target.ts';

/*
 * One test per fault kind (LOCAL_FAULTS), each on the real local engines: DynamoDB Local, the
 * synthesized state machine, the Stripe emulator through the real SDK. Each shows what a user would
 * check afterwards: the order's final state, the money at Stripe and the stock. Retries wait 20 ms
 * instead of their backoff (retryDelayMs); their counts are the definition's.
 */

let runtime: LocalRuntime;
let store: Shop;
const faultLines: string[] = [];
/** Which invocations the faults in force apply to; every one when unset. */
let scope: ((name: FaultName, context: FaultContext) => boolean) | undefined;

const faults = faultInjector({
  spec: {},
  seed: 20261201,
  log: (line) => faultLines.push(line),
  filter: (name, context) => scope?.(name, context) ?? true,
});

function inFaults(spec: FaultSpec, only?: typeof scope) {
  faults.set(spec);
  scope = only;
}

beforeAll(async () => {
  runtime = await startTestRuntime({ config: { PAYMENT_TIMEOUT_SECONDS: '5' }, faults, retryDelayMs: 20 });
  store = shop(runtime);
});

afterEach(() => inFaults({}));

afterAll(async () => {
  await runtime?.stop();
});

/** Places an order for `quantity` of a fresh SKU with 10 in stock (12.50 each). */
async function order(quantity: number, paymentMethodId?: string) {
  const sku = store.sku();
  await store.putProduct(sku, 10);
  const placed = await store.placeOrder({
    customerId: 'cust-faults',
    items: [{ sku, quantity }],
    ...(paymentMethodId ? { paymentMethodId } : {}),
  });
  return { sku, orderId: placed.orderId };
}

async function expectCompleted(orderId: string, sku: string, quantity: number) {
  const settled = await store.settled(orderId);
  expect(settled).toMatchObject({ status: 'COMPLETED', sagaState: 'COMPLETED' });
  const money = await store.moneyAtStripe(orderId);
  expect(money.kept).toBe(quantity * 1250);
  expect(money.intents.filter((intent) => intent.status === 'succeeded')).toHaveLength(1);
  expect(await store.getProduct(sku)).toMatchObject({ available: 10 - quantity, reserved: 0 });
  return settled;
}

async function expectCancelled(orderId: string, sku: string, reason: string) {
  const settled = await store.settled(orderId);
  expect(settled).toMatchObject({
    status: 'CANCELLED',
    sagaState: 'COMPENSATED',
    cancellationReason: reason,
  });
  expect((await store.moneyAtStripe(orderId)).kept).toBe(0);
  expect(await store.getProduct(sku)).toMatchObject({ available: 10, reserved: 0 });
  return settled;
}

const onState = (state: string) => (_: FaultName, context: FaultContext) => context.stateName === state;

describe('lambda.throttle', () => {
  it('a throttled task is retried: the order completes, paid once, stock sold', async () => {
    inFaults({ 'lambda.throttle': 0.5 });
    const { sku, orderId } = await order(2, 'pm_card_visa');
    await expectCompleted(orderId, sku, 2);
    expect(faultLines.some((line) => /fault lambda\.throttle/.test(line))).toBe(true);
  });

  it('a throttle before any money that outlasts the retries cancels PROCESSING_ERROR, nothing held or charged', async () => {
    inFaults({ 'lambda.throttle': 1 }, onState('ReserveStock'));
    const { sku, orderId } = await order(2, 'pm_card_visa');
    await expectCancelled(orderId, sku, 'PROCESSING_ERROR');
    expect((await store.moneyAtStripe(orderId)).intents).toEqual([]);
  });

  it('a throttled step after the charge never refunds a good sale: it retries and completes', async () => {
    // Throttled several times in a row (fewer than the after-money budget), then served.
    let throttled = 0;
    inFaults(
      { 'lambda.throttle': 1 },
      (_, context) => context.stateName === 'ConfirmStock' && throttled++ < 12,
    );
    const { sku, orderId } = await order(1, 'pm_card_visa');
    await expectCompleted(orderId, sku, 1);
    expect(throttled).toBeGreaterThan(12);
  });
});

describe('lambda.lost-response', () => {
  it('every step may commit and then time out: the order completes once, paid once, stock sold once', async () => {
    inFaults({ 'lambda.lost-response': 0.5 });
    const { sku, orderId } = await order(3, 'pm_card_visa');
    await expectCompleted(orderId, sku, 3);
  });

  it('a ConfirmStock that committed but reported failure completes the order (forward recovery)', async () => {
    let lost = 0;
    inFaults(
      { 'lambda.lost-response': 1 },
      (_, context) => context.stateName === 'ConfirmStock' && lost++ === 0,
    );
    const { sku, orderId } = await order(2, 'pm_card_visa');
    const settled = await expectCompleted(orderId, sku, 2);
    expect(lost).toBeGreaterThan(1);
    expect(settled.history.map((entry) => entry.sagaState)).not.toContain('COMPENSATING');
  });

  it('a compensation step that committed and then timed out is repeated harmlessly: stock back once', async () => {
    let lost = 0;
    inFaults(
      { 'lambda.lost-response': 1 },
      (_, context) => context.stateName === 'ReleaseStock' && lost++ < 3,
    );
    const { sku, orderId } = await order(2, 'pm_card_chargeDeclined');
    await expectCancelled(orderId, sku, 'PAYMENT_FAILED');
  });
});

describe('stripe.error', () => {
  it('Stripe answering 500 (cached under the idempotency key) is read back, not replayed forever', async () => {
    inFaults({ 'stripe.error': 0.4 });
    const { sku, orderId } = await order(2, 'pm_card_visa');
    await expectCompleted(orderId, sku, 2);
    expect(faultLines.some((line) => /fault stripe\.error/.test(line))).toBe(true);
  });

  it('a decline under Stripe 500s still cancels PAYMENT_FAILED with no money kept', async () => {
    inFaults({ 'stripe.error': 0.4 });
    const { sku, orderId } = await order(1, 'pm_card_chargeDeclined');
    await expectCancelled(orderId, sku, 'PAYMENT_FAILED');
  });
});

describe('stripe.lost-response', () => {
  it('Stripe doing the work and answering 500: one charge kept, nothing charged twice', async () => {
    inFaults({ 'stripe.lost-response': 0.5 });
    const { sku, orderId } = await order(2, 'pm_card_visa');
    await expectCompleted(orderId, sku, 2);
  });

  it('compensation whose cancel at Stripe takes effect but loses its answer reads it back: no money kept', async () => {
    // Every cancel Stripe receives takes effect, and its answer is a 500 stored under the key.
    inFaults({ 'stripe.lost-response': 1 }, (_, context) => /^POST .*\/cancel$/.test(context.request ?? ''));
    const { sku, orderId } = await order(1, 'pm_card_chargeDeclined');
    await expectCancelled(orderId, sku, 'PAYMENT_FAILED');
    expect(faultLines.some((line) => /^fault stripe\.lost-response: POST .*\/cancel$/.test(line))).toBe(true);
    const { intents } = await store.moneyAtStripe(orderId);
    expect(intents.map((intent) => intent.status)).toEqual(['canceled']);
  });
});

describe('stripe.slow', () => {
  it('every Stripe answer 300 ms late: the order completes as usual', async () => {
    inFaults({ 'stripe.slow': 300 });
    const { sku, orderId } = await order(1, 'pm_card_visa');
    await expectCompleted(orderId, sku, 1);
  });
});

describe('webhook.delay', () => {
  it('a payment whose webhook arrives after the payment timeout is taken as paid, never refunded', async () => {
    inFaults({ 'webhook.delay': 8 });
    const { sku, orderId } = await order(2);
    await store.payInBrowser(orderId);
    await expectCompleted(orderId, sku, 2);
    // The late webhook, when it comes, changes nothing.
    expect((await store.moneyAtStripe(orderId)).intents[0]?.refunded).toBe(0);
  });
});

describe('webhook.drop', () => {
  it('a payment whose webhook never comes is found paid at Stripe when the wait times out', async () => {
    inFaults({ 'webhook.drop': 1 });
    const { sku, orderId } = await order(1);
    await store.payInBrowser(orderId);
    await expectCompleted(orderId, sku, 1);
    expect(faultLines.some((line) => /fault webhook\.drop/.test(line))).toBe(true);
  });

  it('a card payment needs no webhook at all: the step reports what Stripe answered', async () => {
    inFaults({ 'webhook.drop': 1 });
    const paid = await order(1, 'pm_card_visa');
    const declined = await order(1, 'pm_card_chargeDeclined');
    await expectCompleted(paid.orderId, paid.sku, 1);
    await expectCancelled(declined.orderId, declined.sku, 'PAYMENT_FAILED');
  });

  it('an unpaid order whose webhooks are lost is cancelled PAYMENT_TIMEOUT, its intent canceled', async () => {
    inFaults({ 'webhook.drop': 1 });
    const { sku, orderId } = await order(1);
    await expectCancelled(orderId, sku, 'PAYMENT_TIMEOUT');
    const { intents } = await store.moneyAtStripe(orderId);
    expect(intents.map((intent) => intent.status)).toEqual(['canceled']);
  });
});

describe('a fault that outlasts hours of retries after the charge, then redrive', () => {
  it('fails the execution with the order paid and held (never refunded); redriven once fixed, it completes', async () => {
    // ConfirmStock throttled on every attempt: the after-money budget (80 attempts) runs out.
    inFaults({ 'lambda.throttle': 1 }, onState('ConfirmStock'));
    const { sku, orderId } = await order(2, 'pm_card_visa');
    const sfn = new SFNClient({
      endpoint: runtime.stepFunctionsUrl,
      region: 'us-east-1',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    const { stateMachines } = await sfn.send(new ListStateMachinesCommand({}));
    const stateMachineArn = stateMachines![0]!.stateMachineArn!;
    // Retries are 20 ms apart here (retryDelayMs); on AWS the same 80 attempts take hours.
    const executionArn = stateMachineArn.replace(':stateMachine:', ':execution:') + `:${orderId}`;
    await pollUntil(
      'the execution fails',
      () => sfn.send(new DescribeExecutionCommand({ executionArn })),
      (execution) => execution.status === 'FAILED',
      30_000,
    );
    // Paid, not refunded, the stock still held: nothing compensated a good sale.
    expect(await store.getOrder(orderId)).toMatchObject({ status: 'PAYMENT_PENDING' });
    expect((await store.moneyAtStripe(orderId)).kept).toBe(2 * 1250);
    expect(await store.getProduct(sku)).toMatchObject({ available: 8, reserved: 2 });

    // The cause is fixed; the operator redrives with the same command as on AWS.
    inFaults({});
    const directory = await mkdtemp(join(tmpdir(), 'faults-redrive-'));
    const runtimeInfoFile = join(directory, 'local-runtime.json');
    await writeLocalRuntimeInfo(runtimeInfoOf(runtime, stateMachineArn), runtimeInfoFile);
    const out: string[] = [];
    const code = await runSagaRedrive(
      ['--failed'],
      {},
      { out: (line) => out.push(line), err: (line) => out.push(line), runtimeInfoFile },
    );
    expect(code, out.join('\n')).toBe(0);
    await expectCompleted(orderId, sku, 2);
    sfn.destroy();
  }, 60_000);
});
