import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ListStateMachinesCommand, SFNClient, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { DynamoDBDocumentClient, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_STRIPE_API_KEY } from '../local/config.ts';
import { runtimeInfoOf, writeLocalRuntimeInfo } from '../local/runtime-info.ts';
import type { LocalRuntime } from '../local/runtime.ts';
import { startTestRuntime } from '../../tests/support/target.ts';
import { pollUntil } from '../../tests/support/poll.ts';
import { runReconcile, stripeClient } from './reconcile-main.ts';
import { reconcileReport, type ReconcileSources } from './reconcile.ts';
import { executionArnFor } from './saga-redrive.ts';

/*
 * The oracle against the whole local runtime (DynamoDB Local, the synthesized saga, the Stripe
 * emulator): real orders leave nothing to report; discrepancies planted behind the services' backs,
 * at Stripe and in the tables, are each reported with their kind.
 */

let runtime: LocalRuntime;
let raw: DynamoDBClient;
let dynamodb: DynamoDBDocumentClient;
let sfn: SFNClient;
let stripe: Stripe;
let stateMachineArn: string;
let sources: ReconcileSources;
let directory: string;
let runtimeInfoFile: string;

beforeAll(async () => {
  runtime = await startTestRuntime();
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  raw = new DynamoDBClient({ endpoint: runtime.dynamodbEndpoint, region: 'us-east-1', credentials });
  dynamodb = DynamoDBDocumentClient.from(raw);
  sfn = new SFNClient({ endpoint: runtime.stepFunctionsUrl, region: 'us-east-1', credentials });
  const { stateMachines = [] } = await sfn.send(new ListStateMachinesCommand({}));
  expect(stateMachines).toHaveLength(1);
  stateMachineArn = stateMachines[0]!.stateMachineArn!;
  stripe = stripeClient({ apiKey: LOCAL_STRIPE_API_KEY, apiUrl: runtime.stripeUrl });
  sources = {
    dynamodb,
    tableNames: runtime.tableNames,
    stripe,
    stepFunctions: { client: sfn, stateMachineArn },
  };
  directory = await mkdtemp(join(tmpdir(), 'reconcile-'));
  runtimeInfoFile = join(directory, 'local-runtime.json');
  await writeLocalRuntimeInfo(runtimeInfoOf(runtime, stateMachineArn), runtimeInfoFile);
});

afterAll(async () => {
  sfn?.destroy();
  raw?.destroy();
  await runtime?.stop();
  if (directory) await rm(directory, { recursive: true, force: true });
});

const api = (path: string, init?: RequestInit) => fetch(`${runtime.apiUrl}${path}`, init);
const json = { 'content-type': 'application/json' };
const sku = () => `sku-${randomUUID().slice(0, 8)}`;

async function putProduct(id: string, available: number, unitPrice: number) {
  const response = await api(`/products/${id}`, {
    method: 'PUT',
    headers: json,
    body: JSON.stringify({ name: id, unitPrice, currency: 'usd', available }),
  });
  expect(response.status).toBe(200);
  // The stock ledger is internal: the product's public shape is the contract's.
  expect(Object.keys((await response.json()) as object).sort()).toEqual([
    'available',
    'currency',
    'lowStockThreshold',
    'name',
    'reserved',
    'sku',
    'unitPrice',
    'updatedAt',
  ]);
}

type OrderView = {
  orderId: string;
  status: string;
  sagaState: string;
  cancellationReason?: string;
  payment?: { paymentIntentId: string };
};

async function placeOrder(items: Array<{ sku: string; quantity: number }>, paymentMethodId?: string) {
  const response = await api('/orders', {
    method: 'POST',
    headers: json,
    body: JSON.stringify({
      customerId: 'cust-reconcile',
      items,
      ...(paymentMethodId ? { paymentMethodId } : {}),
    }),
  });
  expect(response.status).toBe(202);
  return ((await response.json()) as OrderView).orderId;
}

const getOrder = async (orderId: string) => (await (await api(`/orders/${orderId}`)).json()) as OrderView;

const settled = (orderId: string) =>
  pollUntil(
    `order ${orderId} settles`,
    () => getOrder(orderId),
    (order) => ['COMPLETED', 'COMPENSATED'].includes(order.sagaState),
    30_000,
  );

function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const run = runReconcile(
    args,
    {},
    {
      out: (line) => out.push(line),
      err: (line) => err.push(line),
      runtimeInfoFile,
      recheckDelayMs: 0,
    },
  );
  return run.then((code) => ({ code, out, err }));
}

const tee = sku();
const print = sku();
const orders: Record<'paid' | 'declined' | 'outOfStock', string> = { paid: '', declined: '', outOfStock: '' };

describe('a system the saga settled', () => {
  it('has nothing to report: orders completed and cancelled, their money and stock as they should be', async () => {
    await putProduct(tee, 10, 2500);
    await putProduct(print, 1, 12000);
    orders.paid = await placeOrder([{ sku: tee, quantity: 3 }], 'pm_card_visa');
    orders.declined = await placeOrder([{ sku: tee, quantity: 1 }], 'pm_card_chargeDeclined');
    orders.outOfStock = await placeOrder([{ sku: print, quantity: 2 }], 'pm_card_visa');
    // If these do not settle as expected, the saga changed: tell its owner, do not adapt this test.
    expect(await settled(orders.paid)).toMatchObject({ status: 'COMPLETED' });
    expect(await settled(orders.declined)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'PAYMENT_FAILED',
    });
    expect(await settled(orders.outOfStock)).toMatchObject({
      status: 'CANCELLED',
      cancellationReason: 'OUT_OF_STOCK',
    });

    const report = await reconcileReport(sources, { now: new Date(), notFinalAfterSeconds: 900 });
    expect(report.discrepancies).toEqual([]);
    expect(report.unverifiable).toEqual([]);
    expect(report.checked).toEqual({
      orders: 3,
      products: 2,
      reservations: 3,
      paymentIntents: 2,
      failedExecutions: 0,
    });

    const { code, out } = await cli([]);
    expect(code).toBe(0);
    expect(out).toEqual([
      'reconcile: clean: checked 3 orders, 2 products, 3 reservations, 2 PaymentIntents, executions',
    ]);
  });
});

describe('discrepancies planted behind the services’ backs', () => {
  it('are each reported, with their kind, grouped, and the command exits 1', async () => {
    expect(orders.paid).not.toBe(''); // runs after the clean system above
    const paid = await getOrder(orders.paid);

    // Money: a refund of a completed order; a charge kept for a cancelled order, and for no order.
    await stripe.refunds.create({ payment_intent: paid.payment!.paymentIntentId, amount: 500 });
    const charge = (orderId: string) =>
      stripe.paymentIntents.create({
        amount: 1500,
        currency: 'usd',
        metadata: { orderId },
        payment_method: 'pm_card_visa',
        confirm: true,
      });
    const kept = await charge(orders.outOfStock);
    const orphan = await charge(randomUUID());
    expect([kept.status, orphan.status]).toEqual(['succeeded', 'succeeded']);

    // Stock: units out of nowhere; a cancelled order's reservation holding stock again.
    const inventory = runtime.tableNames.inventory;
    await dynamodb.send(
      new UpdateCommand({
        TableName: inventory,
        Key: { pk: `PRODUCT#${tee}`, sk: 'PRODUCT' },
        UpdateExpression: 'SET available = available + :two',
        ExpressionAttributeValues: { ':two': 2 },
      }),
    );
    await dynamodb.send(
      new UpdateCommand({
        TableName: inventory,
        Key: { pk: `RESERVATION#${orders.declined}`, sk: 'RESERVATION' },
        UpdateExpression: 'SET #status = :active',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':active': 'ACTIVE' },
      }),
    );
    // A cancelled order that lost its reason.
    await dynamodb.send(
      new UpdateCommand({
        TableName: runtime.tableNames.orders,
        Key: { pk: `ORDER#${orders.declined}`, sk: 'ORDER' },
        UpdateExpression: 'REMOVE cancellationReason',
      }),
    );
    // A product as written before the stock ledger: unverifiable, not a discrepancy.
    const legacy = sku();
    await dynamodb.send(
      new PutCommand({
        TableName: inventory,
        Item: {
          pk: `PRODUCT#${legacy}`,
          sk: 'PRODUCT',
          kind: 'product',
          sku: legacy,
          name: legacy,
          unitPrice: 100,
          currency: 'usd',
          available: 5,
          reserved: 0,
          lowStockThreshold: 0,
          updatedAt: new Date().toISOString(),
        },
      }),
    );
    // A saga stopped while it waits for the payment: its execution ABORTED, its order never final.
    const stuck = await placeOrder([{ sku: tee, quantity: 1 }]);
    await pollUntil(
      'the order waits for its payment',
      () => getOrder(stuck),
      (order) => order.status === 'PAYMENT_PENDING',
    );
    await sfn.send(new StopExecutionCommand({ executionArn: executionArnFor(stateMachineArn, stuck) }));

    const anHourOn = new Date(Date.now() + 3_600_000);
    const report = await reconcileReport(sources, { now: anHourOn, notFinalAfterSeconds: 900 });
    expect(report.discrepancies.map(({ kind, id }) => ({ kind, id }))).toEqual([
      { kind: 'completed-order-refunded', id: orders.paid },
      { kind: 'cancelled-order-kept-money', id: orders.outOfStock },
      { kind: 'orphan-charge', id: orphan.id },
      { kind: 'order-not-final', id: stuck },
      { kind: 'cancelled-without-reason', id: orders.declined },
      { kind: 'execution-failed', id: stuck },
      { kind: 'reservation-not-released', id: orders.declined },
      { kind: 'stock-not-conserved', id: tee },
      { kind: 'stock-reserved-mismatch', id: tee },
    ]);
    expect(report.discrepancies.find((d) => d.kind === 'cancelled-order-kept-money')).toMatchObject({
      details: { paymentIntentId: kept.id, kept: 1500, currency: 'usd' },
    });
    expect(report.discrepancies.find((d) => d.kind === 'stock-not-conserved')).toMatchObject({
      details: { available: 8, reserved: 1, sold: 3, stocked: 10, activeUnits: 2, confirmedUnits: 3 },
    });
    expect(report.discrepancies.find((d) => d.kind === 'execution-failed')).toMatchObject({
      details: { status: 'ABORTED' },
    });
    expect(report.unverifiable).toEqual([{ sku: legacy, message: expect.stringContaining('no stocked') }]);

    // The command (checking twice, as it does): now is now, so the stuck order is not late yet.
    const text = await cli([]);
    expect(text.code).toBe(1);
    expect(text.out).toContain(
      'completed-order-refunded: COMPLETED orders whose PaymentIntent was refunded (1)',
    );
    expect(text.out).toContainEqual(
      expect.stringMatching(new RegExp(`^  ${orders.paid}  completed, but 500 usd`)),
    );
    expect(text.out.at(-1)).toMatch(/^reconcile: 8 discrepancies of 8 kinds; checked 4 orders, 3 products/);
    expect(text.out.some((line) => line.includes('order-not-final'))).toBe(false);

    const late = await cli(['--not-final-after', '0', '--json', '--once']);
    expect(late.code).toBe(1);
    const parsed = JSON.parse(late.out.join('\n')) as { discrepancies: Array<{ kind: string }> };
    expect(parsed.discrepancies.map((d) => d.kind)).toContain('order-not-final');
  });
});

describe('the command', () => {
  it('exits 2 with one sentence when there is nothing to reconcile against, or a bad flag', async () => {
    const missing = await runReconcile(
      [],
      {},
      {
        out: () => {},
        err: (line) => expect(line).toMatch(/^reconcile: npm start is not running/),
        runtimeInfoFile: join(directory, 'absent.json'),
      },
    );
    expect(missing).toBe(2);
    expect((await cli(['--not-final-after', 'soon'])).code).toBe(2);
    expect((await cli(['--bogus'])).code).toBe(2);
  });
});
