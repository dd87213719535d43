import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { dynamoInventoryRepository } from '../functions/inventory/inventory-repository.ts';
import {
  confirmStock,
  reserveStock,
  sweepExpired,
  type ReservationDeps,
} from '../functions/inventory/reservations.ts';
import { startDynamoDbLocal } from '../infra/local/processes.ts';
import { createTables, tableName, templateTables } from '../infra/local/tables.ts';
import { synthesizeTemplate } from '../infra/local/template.ts';

/*
 * The inventory service's own figures on DynamoDB Local (127.0.0.1 only): many orders racing for a
 * hot SKU (throughput, latency, and that exactly the stock put in was reserved), 50-line orders
 * (the largest transaction), and one sweeper run over expired holds. DynamoDB Local serialises
 * transactions, so these measure the code's overhead and correctness under contention, not AWS's
 * ceiling (about 500 transactional writes per second per item; docs/architecture.md).
 */
const HOT_ORDERS = Number(process.env.BENCH_HOT_ORDERS ?? 400);
const HOT_STOCK = HOT_ORDERS / 2;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const WIDE_ORDERS = 20;
const EXPIRED_HOLDS = 500;

const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor((p / 100) * values.length))] ??
  NaN;
const ms = (value: number) => `${value.toFixed(0)} ms`;
const latencies = (values: number[]) =>
  `p50 ${ms(percentile(values, 50))}, p95 ${ms(percentile(values, 95))}, p99 ${ms(percentile(values, 99))}`;

async function inParallel<T>(count: number, concurrency: number, task: (index: number) => Promise<T>) {
  const results: T[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}

const dynamodb = await startDynamoDbLocal();
try {
  const raw = new DynamoDBClient({
    endpoint: dynamodb.url,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  const tables = templateTables(await synthesizeTemplate({})).filter((t) =>
    t.logicalId.startsWith('Inventory'),
  );
  await createTables(raw, tables, 'bench-');
  const inventory = dynamoInventoryRepository(
    DynamoDBDocumentClient.from(raw),
    tableName(tables[0]!.logicalId, 'bench-'),
  );
  const deps: ReservationDeps = { inventory, now: () => new Date(), ttlSeconds: 900 };
  const put = (sku: string, available: number) =>
    inventory.putProduct(sku, { name: sku, unitPrice: 100, currency: 'usd', available }, new Date());

  // 1. A hot SKU: twice as many orders as units.
  await put('hot', HOT_STOCK);
  const timings: number[] = [];
  let started = performance.now();
  const outcomes = await inParallel(HOT_ORDERS, CONCURRENCY, async (index) => {
    const t0 = performance.now();
    const outcome = await reserveStock(deps)({
      orderId: `hot-${index}`,
      currency: 'usd',
      items: [{ sku: 'hot', quantity: 1 }],
    });
    timings.push(performance.now() - t0);
    return outcome.outcome;
  });
  let seconds = (performance.now() - started) / 1000;
  const hot = (await inventory.getProduct('hot'))!;
  const reserved = outcomes.filter((outcome) => outcome === 'RESERVED').length;
  console.log(`hot SKU: ${HOT_ORDERS} orders for ${HOT_STOCK} units, ${CONCURRENCY} in flight`);
  console.log(`  ${(HOT_ORDERS / seconds).toFixed(0)} reserve attempts/s; latency ${latencies(timings)}`);
  console.log(
    `  reserved ${reserved}, refused ${HOT_ORDERS - reserved}; product available ${hot.available}, reserved ${hot.reserved}` +
      ` (oversold: ${hot.reserved > HOT_STOCK || hot.available < 0 ? 'YES' : 'no'})`,
  );
  const sold = outcomes.flatMap((outcome, index) => (outcome === 'RESERVED' ? [`hot-${index}`] : []));
  started = performance.now();
  await inParallel(sold.length, CONCURRENCY, (index) => confirmStock(deps)(sold[index]!));
  seconds = (performance.now() - started) / 1000;
  console.log(`  ${(reserved / seconds).toFixed(0)} confirms/s`);

  // 2. The largest order the contract allows: 50 lines in one transaction (52 items).
  const skus = Array.from({ length: 50 }, (_, index) => `wide-${index}`);
  for (const sku of skus) await put(sku, WIDE_ORDERS);
  const wide: number[] = [];
  await inParallel(WIDE_ORDERS, 4, async (index) => {
    const t0 = performance.now();
    await reserveStock(deps)({
      orderId: `wide-${index}`,
      currency: 'usd',
      items: skus.map((sku) => ({ sku, quantity: 1 })),
    });
    wide.push(performance.now() - t0);
  });
  console.log(`50-line orders: ${WIDE_ORDERS}, 4 in flight; latency ${latencies(wide)}`);

  // 3. One sweeper run over holds that have all ended.
  await put('expiring', EXPIRED_HOLDS);
  const past = { ...deps, now: () => new Date(Date.now() - 3_600_000), ttlSeconds: 60 };
  await inParallel(EXPIRED_HOLDS, CONCURRENCY, (index) =>
    reserveStock(past)({
      orderId: `expiring-${index}`,
      currency: 'usd',
      items: [{ sku: 'expiring', quantity: 1 }],
    }),
  );
  started = performance.now();
  const swept = await sweepExpired(deps)();
  seconds = (performance.now() - started) / 1000;
  const after = (await inventory.getProduct('expiring'))!;
  console.log(
    `sweeper: released ${swept.expired} of ${EXPIRED_HOLDS} expired holds in ${seconds.toFixed(2)} s ` +
      `(${(swept.expired / seconds).toFixed(0)}/s, ${swept.failures.length} failures); ` +
      `available ${after.available}, reserved ${after.reserved}`,
  );
  raw.destroy();
} finally {
  await dynamodb.stop();
}
