import { setTimeout as sleep } from 'node:timers/promises';
import { localConfigFrom } from '../infra/local/config.ts';
import { startNatsServer } from '../infra/local/processes.ts';
import { startLocalRuntime } from '../infra/local/runtime.ts';

/*
 * End-to-end saga throughput on the local runtime: N orders (card that succeeds) placed with C in
 * flight, each polled until COMPLETED. Prints latency percentiles, throughput and memory. Bounded
 * in count and time; talks to 127.0.0.1 only. BENCH_ORDERS and BENCH_CONCURRENCY override.
 */
const ORDERS = Number(process.env.BENCH_ORDERS ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const DEADLINE_MS = 5 * 60_000;

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const ms = (value: number) => `${value.toFixed(0)} ms`;

const nats = await startNatsServer();
const runtime = await startLocalRuntime({
  config: localConfigFrom({ PORT: '0', NATS_URL: nats.url, SEED_DEMO_DATA: 'false', LOG_LEVEL: 'SILENT' }),
  log: () => {},
});
try {
  const api = (path: string, init?: RequestInit) => fetch(`${runtime.apiUrl}${path}`, init);
  const headers = { 'content-type': 'application/json' };
  await api('/products/bench-sku', {
    method: 'PUT',
    headers,
    body: JSON.stringify({ name: 'bench', unitPrice: 1000, currency: 'usd', available: ORDERS * 2 }),
  });

  const accept: number[] = [];
  const complete: number[] = [];
  const started = Date.now();
  let next = 0;
  let failed = 0;
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;

  async function worker() {
    while (next < ORDERS && Date.now() - started < DEADLINE_MS) {
      next++;
      const t0 = performance.now();
      const response = await api('/orders', {
        method: 'POST',
        headers,
        body: JSON.stringify({
          customerId: 'bench',
          items: [{ sku: 'bench-sku', quantity: 1 }],
          paymentMethodId: 'pm_card_visa',
        }),
      });
      accept.push(performance.now() - t0);
      const { orderId } = (await response.json()) as { orderId: string };
      for (;;) {
        const order = (await (await api(`/orders/${orderId}`)).json()) as { sagaState: string };
        if (order.sagaState === 'COMPLETED') break;
        if (order.sagaState === 'COMPENSATED' || Date.now() - started > DEADLINE_MS) {
          failed++;
          break;
        }
        await sleep(100);
      }
      complete.push(performance.now() - t0);
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const seconds = (Date.now() - started) / 1000;
  const drainStart = Date.now();
  await runtime.drained();

  const product = (await (await api('/products/bench-sku')).json()) as {
    available: number;
    reserved: number;
  };
  console.log(`orders: ${complete.length} (${failed} not completed), concurrency ${CONCURRENCY}`);
  console.log(`throughput: ${(complete.length / seconds).toFixed(1)} orders/s completed end to end`);
  console.log(
    `POST /orders: p50 ${ms(percentile(accept, 50))}, p95 ${ms(percentile(accept, 95))}, p99 ${ms(percentile(accept, 99))}`,
  );
  console.log(
    `order → COMPLETED: p50 ${ms(percentile(complete, 50))}, p95 ${ms(percentile(complete, 95))}, p99 ${ms(percentile(complete, 99))}`,
  );
  console.log(`outbox drained ${Date.now() - drainStart} ms after the last completion`);
  console.log(
    `stock: available ${product.available}, reserved ${product.reserved} (expected ${ORDERS * 2 - complete.length + failed}, 0)`,
  );
  console.log(
    `runtime process RSS: ${(rssBefore / 2 ** 20).toFixed(0)} MiB before, ${(rssPeak / 2 ** 20).toFixed(0)} MiB peak`,
  );
} finally {
  await runtime.stop();
  await nats.stop();
}
// The handlers' own clients (the bridge's NATS connection, SDK sockets) stay open, as in a warm Lambda.
process.exit();
