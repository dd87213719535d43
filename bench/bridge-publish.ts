import { createEvent } from '../events/envelope.ts';
import { eventBridge } from '../functions/bridge/forward-events.ts';
import { startNatsServer } from '../infra/local/processes.ts';
import { streamDefinitions } from '../infra/nats/streams.ts';
import { connectEventPublisher, ensureStreams } from '../shared/nats.ts';
import { sequenceEvents } from '../shared/outbox/write.ts';
import { outboxRecord } from '../tests/support/outbox-records.ts';

/*
 * The bridge's publish rate beside the raw rate of the same client, in one run on one hermetic
 * nats-server (file storage, as the contract's streams). Raw: the client publishing the same
 * messages with a batch's worth (100) in flight at a time, each waiting for its PubAck, nothing
 * else. Bridge: the same number of events as stream batches of 100 records (20 orders × 5 events,
 * as a busy shard delivers them), through the bridge: envelope read, per-order chains, PubAcks,
 * partial batch response. The bound: the bridge at half the raw rate or better. BENCH_EVENTS
 * overrides the count.
 */
const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const BATCH = 100;
const EVENTS_PER_ORDER = 5;
const ROUNDS = 3;

function orderEvents(run: string, orderIndex: number) {
  const orderId = `${run}-order-${orderIndex}`;
  return sequenceEvents(
    Array.from({ length: EVENTS_PER_ORDER }, () =>
      createEvent('order.status_changed', {
        source: 'order-saga/orders',
        subject: orderId,
        data: {
          orderId,
          status: 'PENDING',
          sagaState: 'STARTED',
          previousStatus: 'PENDING',
          previousSagaState: 'STARTED',
        },
      }),
    ),
    0,
  );
}

/** `count` events in shard order: each batch interleaves its orders' events, as commits do. */
function batchesOf(run: string, count: number) {
  const ordersPerBatch = BATCH / EVENTS_PER_ORDER;
  const batches: ReturnType<typeof orderEvents>[] = [];
  for (let first = 0; first * EVENTS_PER_ORDER < count; first += ordersPerBatch) {
    const orders = Array.from({ length: ordersPerBatch }, (_, index) => orderEvents(run, first + index));
    const batch = [];
    for (let position = 0; position < EVENTS_PER_ORDER; position++)
      for (const events of orders) batch.push(events[position]!);
    batches.push(batch);
  }
  return batches;
}

const nats = await startNatsServer();
try {
  await ensureStreams(nats.url, streamDefinitions(1));
  const rate = (count: number, ms: number) => (count / ms) * 1000;

  async function raw(run: string): Promise<number> {
    const publisher = await connectEventPublisher(nats.url);
    const batches = batchesOf(run, EVENTS);
    const started = performance.now();
    for (const batch of batches)
      await Promise.all(
        batch.map((event) =>
          publisher.publish({ subject: event.type, id: event.id, body: JSON.stringify(event) }),
        ),
      );
    const elapsed = performance.now() - started;
    await publisher.close();
    return rate(batches.length * BATCH, elapsed);
  }

  async function bridged(run: string): Promise<number> {
    let failures = 0;
    const bridge = eventBridge({
      connect: () => connectEventPublisher(nats.url),
      onError: () => failures++,
      onUnpublishable: () => failures++,
    });
    const batches = batchesOf(run, EVENTS).map((batch) => ({
      Records: batch.map((event) => outboxRecord(event)),
    }));
    const started = performance.now();
    for (const batch of batches) {
      const response = await bridge.handle(batch);
      failures += response.batchItemFailures.length;
    }
    const elapsed = performance.now() - started;
    await bridge.close();
    if (failures > 0) throw new Error(`the bridge reported ${failures} failures`);
    return rate(batches.length * BATCH, elapsed);
  }

  await raw('warm-raw');
  await bridged('warm-bridge');
  const raws: number[] = [];
  const bridges: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    raws.push(await raw(`raw-${round}`));
    bridges.push(await bridged(`bridge-${round}`));
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  const rawRate = median(raws);
  const bridgeRate = median(bridges);
  const ratio = bridgeRate / rawRate;
  console.log(
    `bridge publish: ${EVENTS} events × ${ROUNDS} rounds (median), batches of ${BATCH}, ${EVENTS_PER_ORDER} events per order`,
  );
  console.log(`  raw client (100 in flight)  ${rawRate.toFixed(0).padStart(7)} events/s`);
  console.log(`  bridge                      ${bridgeRate.toFixed(0).padStart(7)} events/s`);
  console.log(
    `  bridge / raw                ${ratio.toFixed(2).padStart(7)}   (bound ≥ 0.50: ${ratio >= 0.5 ? 'met' : 'NOT met'})`,
  );
} finally {
  await nats.stop();
}
