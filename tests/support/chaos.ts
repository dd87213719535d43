import { ListStateMachinesCommand, SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, paginateScan } from '@aws-sdk/lib-dynamodb';
import { mulberry32 } from '../../infra/local/faults.ts';
import type { LocalRuntime } from '../../infra/local/runtime.ts';
import { reconcile, type Discrepancy } from '../../infra/ops/reconcile.ts';
import { readStoredEvents } from './nats-events.ts';
import { shop, type OrderView } from './shop.ts';

/*
 * The chaos workload: orders of every payment method, customers cancelling at any moment, a scarce
 * SKU raced for, all against a runtime that injects faults (LOCAL_FAULTS). Shared by the chaos test,
 * which asserts, and `npm run bench`, which prints the figures.
 */

/** The faults of a chaos run: every kind at once, at rates that make each happen many times. */
export const CHAOS_FAULTS = {
  'lambda.throttle': 0.1,
  'lambda.lost-response': 0.1,
  'stripe.error': 0.1,
  'stripe.lost-response': 0.1,
  'stripe.slow': 20,
  'webhook.delay': 1,
  'webhook.drop': 0.2,
} as const;

const KINDS = [
  'card',
  'declined',
  'insufficient-funds',
  'authentication-required',
  'browser-pays',
  'browser-abandons',
  'cancel-while-waiting',
  'cancel-racing-card',
  'scarce-card',
  'unknown-product',
] as const;
type Kind = (typeof KINDS)[number];

/** The final states each kind may end in: [status, cancellationReason]. */
const ALLOWED: Record<Kind, ReadonlyArray<readonly [string, string?]>> = {
  card: [['COMPLETED']],
  declined: [['CANCELLED', 'PAYMENT_FAILED']],
  'insufficient-funds': [['CANCELLED', 'PAYMENT_FAILED']],
  'authentication-required': [['CANCELLED', 'PAYMENT_TIMEOUT']],
  // Paid in the browser; a payment that lost the race with the timeout is canceled instead.
  'browser-pays': [['COMPLETED'], ['CANCELLED', 'PAYMENT_TIMEOUT']],
  'browser-abandons': [['CANCELLED', 'PAYMENT_TIMEOUT']],
  // The cancel races the payment timeout on a slow machine: either ends the order, no money kept.
  'cancel-while-waiting': [
    ['CANCELLED', 'CUSTOMER_CANCELLED'],
    ['CANCELLED', 'PAYMENT_TIMEOUT'],
  ],
  // Exactly one of the cancel and the payment wins.
  'cancel-racing-card': [['COMPLETED'], ['CANCELLED', 'CUSTOMER_CANCELLED']],
  'scarce-card': [['COMPLETED'], ['CANCELLED', 'OUT_OF_STOCK']],
  'unknown-product': [['CANCELLED', 'UNKNOWN_PRODUCT']],
};

export interface ChaosResult {
  orders: Array<{ orderId: string; kind: Kind; final: OrderView; allowed: boolean; cancelAnswer?: number }>;
  /** Milliseconds from the first order placed until every order was final. */
  settledAfterMs: number;
  discrepancies: Discrepancy[];
  /** Outbox events of the run's orders that reached NATS other than exactly once. */
  events: { written: number; onNats: number; missing: string[]; duplicated: string[] };
  faults: Record<string, number>;
  finalStates: Record<string, number>;
}

export async function runChaos(
  runtime: LocalRuntime,
  options: { orders: number; seed: number; concurrency?: number },
): Promise<ChaosResult> {
  const store = shop(runtime);
  const random = mulberry32(options.seed);
  const plenty = store.sku();
  const scarce = store.sku();
  await store.putProduct(plenty, 10_000, 1250);
  await store.putProduct(scarce, 5, 900);

  const plan = Array.from({ length: options.orders }, (_, index) => KINDS[index % KINDS.length]!).sort(
    () => random() - 0.5,
  );
  const started = Date.now();
  const results: ChaosResult['orders'] = [];
  let next = 0;

  const runOne = async (kind: Kind) => {
    const items =
      kind === 'unknown-product'
        ? [{ sku: `missing-${store.sku()}`, quantity: 1 }]
        : [{ sku: kind === 'scarce-card' ? scarce : plenty, quantity: kind === 'scarce-card' ? 2 : 1 }];
    const paymentMethodId = {
      card: 'pm_card_visa',
      declined: 'pm_card_chargeDeclined',
      'insufficient-funds': 'pm_card_chargeDeclinedInsufficientFunds',
      'authentication-required': 'pm_card_authenticationRequired',
      'browser-pays': undefined,
      'browser-abandons': undefined,
      'cancel-while-waiting': 'pm_card_authenticationRequired',
      'cancel-racing-card': 'pm_card_visa',
      'scarce-card': 'pm_card_visa',
      'unknown-product': 'pm_card_visa',
    }[kind];
    const placed = await store.placeOrder({
      customerId: `chaos-${kind}`,
      items,
      ...(paymentMethodId ? { paymentMethodId } : {}),
    });
    let cancelAnswer: number | undefined;
    if (kind === 'browser-pays') await store.payInBrowser(placed.orderId).catch(() => undefined);
    if (kind === 'cancel-racing-card') cancelAnswer = (await store.cancel(placed.orderId)).status;
    if (kind === 'cancel-while-waiting') {
      await store.waitFor(placed.orderId, (order) => order.sagaState === 'PAYMENT_PENDING');
      cancelAnswer = (await store.cancel(placed.orderId)).status;
    }
    const final = await store.settled(placed.orderId, 120_000);
    const allowed = ALLOWED[kind].some(
      ([status, reason]) => final.status === status && final.cancellationReason === reason,
    );
    results.push({
      orderId: placed.orderId,
      kind,
      final,
      allowed,
      ...(cancelAnswer ? { cancelAnswer } : {}),
    });
  };
  const worker = async () => {
    while (next < plan.length) await runOne(plan[next++]!);
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  const settledAfterMs = Date.now() - started;

  // The oracle reads after the storm: its own calls to Stripe are not the system's, so no faults.
  const faults = runtime.faults.counts();
  runtime.faults.set({});
  await runtime.drained();
  const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  const dynamodb = DynamoDBDocumentClient.from(
    new DynamoDBClient({ endpoint: runtime.dynamodbEndpoint, region: 'us-east-1', credentials }),
  );
  const sfn = new SFNClient({ endpoint: runtime.stepFunctionsUrl, region: 'us-east-1', credentials });
  try {
    const { stateMachines } = await sfn.send(new ListStateMachinesCommand({}));
    const discrepancies = await reconcile(
      {
        dynamodb,
        tableNames: runtime.tableNames,
        stripe: store.stripe,
        stepFunctions: { client: sfn, stateMachineArn: stateMachines![0]!.stateMachineArn! },
      },
      { now: new Date(), notFinalAfterSeconds: 0 },
    );
    const events = await eventsExactlyOnce(
      runtime,
      dynamodb,
      new Set(results.map((result) => result.orderId)),
    );
    const finalStates: Record<string, number> = {};
    for (const { final } of results) {
      const key = [final.status, final.cancellationReason].filter(Boolean).join(' ');
      finalStates[key] = (finalStates[key] ?? 0) + 1;
    }
    return {
      orders: results,
      settledAfterMs,
      discrepancies,
      events,
      faults,
      finalStates,
    };
  } finally {
    sfn.destroy();
    dynamodb.destroy();
  }
}

/** Every outbox event of the run's orders, compared with what JetStream holds: each id exactly once. */
async function eventsExactlyOnce(
  runtime: LocalRuntime,
  dynamodb: DynamoDBDocumentClient,
  orderIds: ReadonlySet<string>,
): Promise<ChaosResult['events']> {
  const written = new Set<string>();
  for (const table of Object.values(runtime.tableNames)) {
    for await (const page of paginateScan(
      { client: dynamodb },
      {
        TableName: table,
        FilterExpression: 'kind = :event',
        ExpressionAttributeValues: { ':event': 'event' },
        ConsistentRead: true,
      },
    )) {
      for (const item of page.Items ?? []) {
        const event = JSON.parse(String(item.event)) as { id: string; subject: string };
        if (orderIds.has(event.subject)) written.add(event.id);
      }
    }
  }
  const seen = new Map<string, number>();
  for (const stored of await readStoredEvents(runtime.natsUrl)) {
    if (!orderIds.has(stored.event.subject)) continue;
    seen.set(stored.event.id, (seen.get(stored.event.id) ?? 0) + 1);
  }
  return {
    written: written.size,
    onNats: [...seen.values()].reduce((sum, count) => sum + count, 0),
    missing: [...written].filter((id) => !seen.has(id)),
    duplicated: [...seen].filter(([, count]) => count > 1).map(([id]) => id),
  };
}
