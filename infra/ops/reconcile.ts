import { paginateListExecutions, type SFNClient } from '@aws-sdk/client-sfn';
import { GetCommand, paginateScan, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import Stripe from 'stripe';
import type { Product, Reservation } from '../../functions/inventory/stock.ts';
import type { Order } from '../../functions/orders/order.ts';
import type { Payment } from '../../functions/payments/payment.ts';

/*
 * The reconciliation oracle: reads the three services' tables, Stripe and (optionally) the saga's
 * executions, and lists every way they disagree with the contract's saga outcomes
 * (/work/shared/CONTRACT.md §2, "Saga outcomes users rely on"). Read-only. Exact on a system at rest;
 * on a busy one a scan meets writes half-way, so a stock figure of a SKU being sold right then can
 * show as a discrepancy that the next run no longer finds (`npm run reconcile` checks twice).
 */

/** Every kind of discrepancy, with the heading the report prints it under, in report order. */
export const DISCREPANCY_KINDS = {
  'completed-order-unpaid': 'COMPLETED orders without a succeeded PaymentIntent',
  'completed-order-refunded': 'COMPLETED orders whose PaymentIntent was refunded',
  'completed-order-amount-mismatch': 'COMPLETED orders charged another amount or currency',
  'payment-record-mismatch': 'COMPLETED orders whose payment record disagrees',
  'cancelled-order-kept-money': 'CANCELLED orders that kept money',
  'stray-charge': 'charges kept for a COMPLETED order by a PaymentIntent that is not its own',
  'orphan-charge': 'charges kept for an order that does not exist',
  'order-not-final': 'orders neither COMPLETED nor CANCELLED in time',
  'cancelled-without-reason': 'CANCELLED orders without a cancellationReason',
  'execution-failed': 'saga executions that failed, timed out or were aborted',
  'reservation-not-confirmed': 'COMPLETED orders whose reservation is not CONFIRMED',
  'reservation-not-released': 'CANCELLED orders whose reservation still holds or sold stock',
  'stock-negative': 'products with a negative stock figure',
  'stock-not-conserved': 'products where available + reserved + sold differs from the stock put in',
  'stock-reserved-mismatch': "products whose reserved differs from their ACTIVE reservations' units",
  'stock-sold-mismatch': "products whose sold differs from their CONFIRMED reservations' units",
} as const;
export type DiscrepancyKind = keyof typeof DISCREPANCY_KINDS;

export interface Discrepancy {
  kind: DiscrepancyKind;
  /** What it is about: the orderId, the sku, or (for a charge no order owns) the PaymentIntent id. */
  id: string;
  /** One sentence for the operator. */
  message: string;
  /** The figures behind it, as read. */
  details: Record<string, unknown>;
}

export interface ReconcileSources {
  dynamodb: DynamoDBDocumentClient;
  tableNames: { orders: string; inventory: string; payments: string };
  /** The Stripe API the payments service uses (the emulator locally). */
  stripe: Stripe;
  /** Without it, executions are not checked. */
  stepFunctions?: { client: SFNClient; stateMachineArn: string };
}

export interface ReconcileOptions {
  now: Date;
  /** An order created longer ago than this that is neither COMPLETED nor CANCELLED is a discrepancy. */
  notFinalAfterSeconds: number;
  /** Stripe refund lists read at a time (default 8). */
  stripeConcurrency?: number;
}

/**
 * The default for `notFinalAfterSeconds`: the saga waits PAYMENT_TIMEOUT_SECONDS (default 30) for a
 * payment and retries faults for minutes; a quarter of an hour is well past both.
 */
export const DEFAULT_NOT_FINAL_AFTER_SECONDS = 15 * 60;

export interface ReconcileReport {
  discrepancies: Discrepancy[];
  /**
   * Products whose ledger does not go back to their creation (written before `stocked` and `sold`
   * existed): what is not known about them, which no discrepancy is.
   */
  unverifiable: Array<{ sku: string; message: string }>;
  checked: {
    orders: number;
    products: number;
    reservations: number;
    paymentIntents: number;
    /** Failed executions found; undefined when Step Functions was not checked. */
    failedExecutions: number | undefined;
  };
}

const FINAL = new Set(['COMPLETED', 'CANCELLED']);
const FAILED_EXECUTION_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const;

/** Every discrepancy (see reconcileReport), in report order. */
export async function reconcile(
  sources: ReconcileSources,
  options: ReconcileOptions,
): Promise<Discrepancy[]> {
  return (await reconcileReport(sources, options)).discrepancies;
}

/** One pass over everything: the discrepancies in report order, what could not be verified, and counts. */
export async function reconcileReport(
  sources: ReconcileSources,
  options: ReconcileOptions,
): Promise<ReconcileReport> {
  const { dynamodb, tableNames, stripe } = sources;
  const [orders, payments, inventory, listedIntents, executions] = await Promise.all([
    scanItems<Order>(dynamodb, tableNames.orders, ['ORDER']),
    scanItems<Payment>(dynamodb, tableNames.payments, ['PAYMENT']),
    scanItems<Product | Reservation>(dynamodb, tableNames.inventory, ['PRODUCT', 'RESERVATION']),
    listPaymentIntents(stripe),
    sources.stepFunctions ? listFailedExecutions(sources.stepFunctions) : Promise.resolve(undefined),
  ]);
  const products = inventory.filter((item) => item.sk === 'PRODUCT').map((item) => item.value as Product);
  const reservations = inventory
    .filter((item) => item.sk === 'RESERVATION')
    .map((item) => item.value as Reservation);

  const ordersById = new Map(orders.map(({ value }) => [value.orderId, value]));
  const paymentsByOrder = new Map(payments.map(({ value }) => [value.orderId, value]));
  const reservationsByOrder = new Map(reservations.map((reservation) => [reservation.orderId, reservation]));

  // The intent each final order records: the order's own record, else the payments service's.
  const recordedIntent = (order: Order) =>
    order.payment?.paymentIntentId ?? paymentsByOrder.get(order.orderId)?.paymentIntentId;

  // Every intent to look at: Stripe's list, and any final order's recorded intent the list missed.
  const intents = new Map(listedIntents.map((intent) => [intent.id, intent]));
  const missing = [...ordersById.values()]
    .filter((order) => FINAL.has(order.status))
    .map(recordedIntent)
    .filter((id): id is string => id !== undefined && !intents.has(id));
  for (const intent of await mapLimit([...new Set(missing)], 8, (id) => retrieveIntent(stripe, id))) {
    if (intent) intents.set(intent.id, intent);
  }
  const refunded = new Map<string, number>();
  const succeeded = [...intents.values()].filter((intent) => intent.status === 'succeeded');
  const sums = await mapLimit(succeeded, options.stripeConcurrency ?? 8, (intent) =>
    refundedAmount(stripe, intent.id),
  );
  succeeded.forEach((intent, index) => refunded.set(intent.id, sums[index]!));

  const found: Discrepancy[] = [];
  const report = (kind: DiscrepancyKind, id: string, message: string, details: Record<string, unknown>) =>
    found.push({ kind, id, message, details });

  for (const order of ordersById.values()) {
    checkOrderLifecycle(order, options, report);
    checkReservationOfOrder(order, reservationsByOrder.get(order.orderId), report);
    if (order.status === 'COMPLETED') {
      checkCompletedPayment(order, paymentsByOrder.get(order.orderId), intents, refunded, report);
    }
  }

  // Money kept by an intent for an order that is cancelled, unknown, or completed by another intent.
  const ownerOfIntent = new Map<string, string>();
  for (const order of ordersById.values()) {
    const id = recordedIntent(order);
    if (id) ownerOfIntent.set(id, order.orderId);
  }
  for (const intent of succeeded) {
    const orderId = intent.metadata?.orderId || ownerOfIntent.get(intent.id);
    const received = intent.amount_received || intent.amount;
    const kept = received - (refunded.get(intent.id) ?? 0);
    if (!orderId || kept <= 0) continue;
    // An order created after the scan is not missing: read it once more before saying so.
    const order = ordersById.get(orderId) ?? (await getOrder(dynamodb, tableNames.orders, orderId));
    const money = { paymentIntentId: intent.id, amount: received, currency: intent.currency, kept };
    if (!order) {
      report(
        'orphan-charge',
        intent.id,
        `${intent.id} keeps ${kept} ${intent.currency} for order ${orderId}, which does not exist`,
        { orderId, ...money },
      );
    } else if (order.status === 'CANCELLED') {
      report(
        'cancelled-order-kept-money',
        orderId,
        `cancelled (${order.cancellationReason ?? 'no reason'}) but ${intent.id} keeps ${kept} ${intent.currency}`,
        { ...money, refunded: refunded.get(intent.id) ?? 0, cancellationReason: order.cancellationReason },
      );
    } else if (order.status === 'COMPLETED' && recordedIntent(order) !== intent.id) {
      report(
        'stray-charge',
        intent.id,
        `${intent.id} keeps ${kept} ${intent.currency} for completed order ${orderId}, which was paid by ${recordedIntent(order) ?? 'no recorded intent'}`,
        { orderId, recordedPaymentIntentId: recordedIntent(order), ...money },
      );
    }
  }

  for (const execution of executions ?? []) {
    report(
      'execution-failed',
      execution.name,
      `saga execution ${execution.status}${execution.stopDate ? ` at ${execution.stopDate}` : ''}`,
      execution,
    );
  }

  const unverifiable = checkStock(products, reservations, report);

  return {
    discrepancies: sortDiscrepancies(found),
    unverifiable,
    checked: {
      orders: ordersById.size,
      products: products.length,
      reservations: reservations.length,
      paymentIntents: intents.size,
      failedExecutions: executions?.length,
    },
  };
}

type Report = (kind: DiscrepancyKind, id: string, message: string, details: Record<string, unknown>) => void;

function checkOrderLifecycle(order: Order, options: ReconcileOptions, report: Report) {
  const ageSeconds = (options.now.getTime() - Date.parse(order.createdAt)) / 1000;
  if (!FINAL.has(order.status) && ageSeconds > options.notFinalAfterSeconds) {
    report(
      'order-not-final',
      order.orderId,
      `${order.status} (saga ${order.sagaState}) ${Math.round(ageSeconds)} s after it was placed`,
      {
        status: order.status,
        sagaState: order.sagaState,
        createdAt: order.createdAt,
        updatedAt: order.updatedAt,
        lastStep: order.history.at(-1),
      },
    );
  }
  if (order.status === 'CANCELLED' && !order.cancellationReason) {
    report(
      'cancelled-without-reason',
      order.orderId,
      `cancelled (saga ${order.sagaState}) without a cancellationReason`,
      {
        sagaState: order.sagaState,
        updatedAt: order.updatedAt,
      },
    );
  }
}

function checkReservationOfOrder(order: Order, reservation: Reservation | undefined, report: Report) {
  const status = reservation?.status ?? 'NONE';
  const details = {
    orderStatus: order.status,
    reservationStatus: status,
    reservationId: reservation?.reservationId,
  };
  if (order.status === 'COMPLETED' && status !== 'CONFIRMED') {
    report(
      'reservation-not-confirmed',
      order.orderId,
      `completed, but its reservation is ${status}`,
      details,
    );
  }
  if (order.status === 'CANCELLED' && (status === 'ACTIVE' || status === 'CONFIRMED')) {
    report('reservation-not-released', order.orderId, `cancelled, but its reservation is ${status}`, details);
  }
}

function checkCompletedPayment(
  order: Order,
  payment: Payment | undefined,
  intents: ReadonlyMap<string, Stripe.PaymentIntent>,
  refunded: ReadonlyMap<string, number>,
  report: Report,
) {
  const fromOrder = order.payment?.paymentIntentId;
  const fromPayments = payment?.paymentIntentId;
  if (
    !payment ||
    payment.status !== 'SUCCEEDED' ||
    (fromOrder && fromPayments && fromOrder !== fromPayments)
  ) {
    report(
      'payment-record-mismatch',
      order.orderId,
      !payment
        ? 'completed, but the payments service has no payment for it'
        : `completed with ${fromOrder ?? 'no PaymentIntent'}, but its payment is ${payment.status} with ${fromPayments ?? 'no PaymentIntent'}`,
      { orderPaymentIntentId: fromOrder, paymentIntentId: fromPayments, paymentStatus: payment?.status },
    );
  }
  const intentId = fromOrder ?? fromPayments;
  const intent = intentId ? intents.get(intentId) : undefined;
  if (!intentId || !intent || intent.status !== 'succeeded') {
    report(
      'completed-order-unpaid',
      order.orderId,
      !intentId
        ? 'completed, but no PaymentIntent is recorded for it'
        : !intent
          ? `completed, but its PaymentIntent ${intentId} does not exist at Stripe`
          : `completed, but its PaymentIntent ${intentId} is ${intent.status}`,
      { paymentIntentId: intentId, stripeStatus: intent?.status },
    );
    return;
  }
  const refundedAmount = refunded.get(intent.id) ?? 0;
  if (refundedAmount > 0) {
    report(
      'completed-order-refunded',
      order.orderId,
      `completed, but ${refundedAmount} ${intent.currency} of its PaymentIntent ${intent.id} was refunded`,
      {
        paymentIntentId: intent.id,
        amount: intent.amount,
        refunded: refundedAmount,
      },
    );
  }
  if (intent.amount !== order.amount || intent.currency.toLowerCase() !== order.currency.toLowerCase()) {
    report(
      'completed-order-amount-mismatch',
      order.orderId,
      `order of ${order.amount ?? '(no amount)'} ${order.currency}, PaymentIntent ${intent.id} of ${intent.amount} ${intent.currency}`,
      {
        paymentIntentId: intent.id,
        orderAmount: order.amount,
        orderCurrency: order.currency,
        intentAmount: intent.amount,
        intentCurrency: intent.currency,
      },
    );
  }
}

/** Each product's figures against its ledger and the reservations; returns what cannot be verified. */
function checkStock(
  products: Product[],
  reservations: Reservation[],
  report: Report,
): ReconcileReport['unverifiable'] {
  const units = new Map<string, { active: number; confirmed: number }>();
  for (const reservation of reservations) {
    if (reservation.status !== 'ACTIVE' && reservation.status !== 'CONFIRMED') continue;
    for (const line of reservation.lines) {
      const sum = units.get(line.sku) ?? { active: 0, confirmed: 0 };
      if (reservation.status === 'ACTIVE') sum.active += line.quantity;
      else sum.confirmed += line.quantity;
      units.set(line.sku, sum);
    }
  }
  const unverifiable: ReconcileReport['unverifiable'] = [];
  for (const product of products) {
    const { active, confirmed } = units.get(product.sku) ?? { active: 0, confirmed: 0 };
    units.delete(product.sku);
    const figures = {
      available: product.available,
      reserved: product.reserved,
      sold: product.sold,
      stocked: product.stocked,
      activeUnits: active,
      confirmedUnits: confirmed,
    };
    const negative = (['available', 'reserved', 'sold', 'stocked'] as const).filter(
      (field) => (product[field] ?? 0) < 0,
    );
    if (negative.length > 0) {
      report(
        'stock-negative',
        product.sku,
        negative.map((field) => `${field} ${product[field]}`).join(', '),
        figures,
      );
    }
    if (product.reserved !== active) {
      report(
        'stock-reserved-mismatch',
        product.sku,
        `reserved ${product.reserved}, ACTIVE reservations hold ${active}`,
        figures,
      );
    }
    if (product.stocked === undefined) {
      unverifiable.push({
        sku: product.sku,
        message:
          'written before the stock ledger existed (no stocked): the stock put in and sold are not known; the next PUT starts the ledger',
      });
      continue;
    }
    const sold = product.sold ?? 0;
    if (product.available + product.reserved + sold !== product.stocked) {
      report(
        'stock-not-conserved',
        product.sku,
        `available ${product.available} + reserved ${product.reserved} + sold ${sold} = ${product.available + product.reserved + sold}, stock put in ${product.stocked}`,
        figures,
      );
    }
    if (product.soldIncomplete ? sold > confirmed : sold !== confirmed) {
      report(
        'stock-sold-mismatch',
        product.sku,
        `sold ${sold}, CONFIRMED reservations ${confirmed}${product.soldIncomplete ? ' (sales before the ledger uncounted)' : ''}`,
        figures,
      );
    }
    if (product.soldIncomplete) {
      unverifiable.push({
        sku: product.sku,
        message:
          'its ledger began after it was created: sales before that are not in sold (checked: sold <= CONFIRMED units)',
      });
    }
  }
  for (const [sku, { active, confirmed }] of units) {
    if (active > 0) {
      report('stock-reserved-mismatch', sku, `no such product, yet ACTIVE reservations hold ${active}`, {
        activeUnits: active,
        confirmedUnits: confirmed,
      });
    }
  }
  return unverifiable;
}

function sortDiscrepancies(found: Discrepancy[]): Discrepancy[] {
  const order = Object.keys(DISCREPANCY_KINDS);
  return found.sort(
    (a, b) => order.indexOf(a.kind) - order.indexOf(b.kind) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}

/**
 * The report for a person: one line per discrepancy under its kind's heading, then a summary line;
 * clean, the summary line alone.
 */
export function formatReport(report: ReconcileReport): string[] {
  const { checked } = report;
  const counts =
    `${checked.orders} orders, ${checked.products} products, ${checked.reservations} reservations, ` +
    `${checked.paymentIntents} PaymentIntents` +
    (checked.failedExecutions === undefined ? ', executions not checked' : ', executions');
  const lines: string[] = [];
  for (const kind of Object.keys(DISCREPANCY_KINDS) as DiscrepancyKind[]) {
    const ofKind = report.discrepancies.filter((discrepancy) => discrepancy.kind === kind);
    if (ofKind.length === 0) continue;
    lines.push(`${kind}: ${DISCREPANCY_KINDS[kind]} (${ofKind.length})`);
    for (const discrepancy of ofKind) lines.push(`  ${discrepancy.id}  ${discrepancy.message}`);
  }
  if (report.unverifiable.length > 0) {
    lines.push(`unverifiable (not discrepancies) (${report.unverifiable.length})`);
    for (const item of report.unverifiable) lines.push(`  ${item.sku}  ${item.message}`);
  }
  const total = report.discrepancies.length;
  const kinds = new Set(report.discrepancies.map((discrepancy) => discrepancy.kind)).size;
  const unverified = report.unverifiable.length > 0 ? `, ${report.unverifiable.length} unverifiable` : '';
  lines.push(
    total === 0
      ? `reconcile: clean: checked ${counts}${unverified}`
      : `reconcile: ${plural(total, 'discrepancy', 'discrepancies')} of ${plural(kinds, 'kind', 'kinds')}; ` +
          `checked ${counts}${unverified}`,
  );
  return lines;
}

const plural = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`;

/** A table's items whose sort key is one of `sks`, keys stripped, with a strongly consistent scan. */
async function scanItems<T>(
  client: DynamoDBDocumentClient,
  tableName: string,
  sks: readonly string[],
): Promise<Array<{ sk: string; value: T }>> {
  const items: Array<{ sk: string; value: T }> = [];
  const values = Object.fromEntries(sks.map((sk, index) => [`:sk${index}`, sk]));
  for await (const page of paginateScan(
    { client, pageSize: 500 },
    {
      TableName: tableName,
      ConsistentRead: true,
      FilterExpression: `sk IN (${Object.keys(values).join(', ')})`,
      ExpressionAttributeValues: values,
    },
  )) {
    for (const item of page.Items ?? []) {
      const { pk: _pk, sk, kind: _kind, ...value } = item;
      items.push({ sk: String(sk), value: value as T });
    }
  }
  return items;
}

async function getOrder(client: DynamoDBDocumentClient, tableName: string, orderId: string) {
  const { Item } = await client.send(
    new GetCommand({
      TableName: tableName,
      Key: { pk: `ORDER#${orderId}`, sk: 'ORDER' },
      ConsistentRead: true,
    }),
  );
  return Item as Order | undefined;
}

async function listPaymentIntents(stripe: Stripe): Promise<Stripe.PaymentIntent[]> {
  const intents: Stripe.PaymentIntent[] = [];
  for await (const intent of stripe.paymentIntents.list({ limit: 100 })) intents.push(intent);
  return intents;
}

async function retrieveIntent(stripe: Stripe, id: string): Promise<Stripe.PaymentIntent | undefined> {
  try {
    return await stripe.paymentIntents.retrieve(id);
  } catch (error) {
    if (error instanceof Stripe.errors.StripeInvalidRequestError && error.code === 'resource_missing') {
      return undefined;
    }
    throw error;
  }
}

/** What the intent's refunds gave back: a failed or canceled refund gave nothing. */
async function refundedAmount(stripe: Stripe, paymentIntentId: string): Promise<number> {
  let sum = 0;
  for await (const refund of stripe.refunds.list({ payment_intent: paymentIntentId, limit: 100 })) {
    if (refund.status !== 'failed' && refund.status !== 'canceled') sum += refund.amount;
  }
  return sum;
}

type FailedExecution = {
  name: string;
  executionArn: string;
  status: string;
  startDate?: string;
  stopDate?: string;
};

async function listFailedExecutions(stepFunctions: NonNullable<ReconcileSources['stepFunctions']>) {
  const failed: FailedExecution[] = [];
  for (const statusFilter of FAILED_EXECUTION_STATUSES) {
    for await (const page of paginateListExecutions(
      { client: stepFunctions.client },
      { stateMachineArn: stepFunctions.stateMachineArn, statusFilter },
    )) {
      for (const execution of page.executions ?? []) {
        failed.push({
          name: execution.name ?? execution.executionArn?.split(':').at(-1) ?? '?',
          executionArn: execution.executionArn ?? '',
          status: execution.status ?? statusFilter,
          ...(execution.startDate ? { startDate: execution.startDate.toISOString() } : {}),
          ...(execution.stopDate ? { stopDate: execution.stopDate.toISOString() } : {}),
        });
      }
    }
  }
  return failed;
}

/** `fn` over `items`, at most `limit` at a time, results in order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
