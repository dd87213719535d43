import { localConfigFrom } from '../infra/local/config.ts';
import { faultInjector } from '../infra/local/faults.ts';
import { startNatsServer } from '../infra/local/processes.ts';
import { startLocalRuntime } from '../infra/local/runtime.ts';
import { CHAOS_FAULTS, runChaos } from '../tests/support/chaos.ts';

/*
 * The chaos run: the same workload as tests/e2e/chaos.test.ts (every payment method, cancels, a
 * scarce SKU), first with no faults (the bound), then under every fault kind at once, with the
 * state machine's real retry backoff. Prints orders, faults injected by kind, final states,
 * discrepancies (must be 0), events not on NATS exactly once (must be 0) and the time until every
 * order settled. BENCH_CHAOS_ORDERS and BENCH_CHAOS_SEED override.
 */
const ORDERS = Number(process.env.BENCH_CHAOS_ORDERS ?? 80);
const SEED = Number(process.env.BENCH_CHAOS_SEED ?? 8080);

const nats = await startNatsServer();
// One runtime for both runs (handlers are imported once per process, with the runtime's endpoints).
const faults = faultInjector({ spec: {}, seed: SEED, log: () => {} });
const runtime = await startLocalRuntime({
  config: localConfigFrom({
    PORT: '0',
    NATS_URL: nats.url,
    SEED_DEMO_DATA: 'false',
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'SILENT',
    PAYMENT_TIMEOUT_SECONDS: '5',
  }),
  faults,
  log: process.env.BENCH_LOG_LEVEL ? console.log : () => {},
});
try {
  const runs = [];
  for (const [label, spec] of [
    ['no faults', {}],
    ['every fault', { ...CHAOS_FAULTS }],
  ] as const) {
    faults.set(spec);
    runs.push({ label, result: await runChaos(runtime, { orders: ORDERS, seed: SEED }) });
  }

  console.log(`\nchaos: ${ORDERS} orders, seed ${SEED}, faults ${JSON.stringify(CHAOS_FAULTS)}`);
  for (const { label, result } of runs) {
    const faults = Object.entries(result.faults)
      .filter(([, count]) => count > 0)
      .map(([name, count]) => `${name} ${count}`)
      .join(', ');
    const states = Object.entries(result.finalStates)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([state, count]) => `${state} ${count}`)
      .join(', ');
    const unexpected = result.orders.filter((order) => !order.allowed).length;
    const eventsOff = result.events.missing.length + result.events.duplicated.length;
    console.log(`  ${label}`);
    console.log(
      `    settled after        ${(result.settledAfterMs / 1000).toFixed(1)} s (every order final)`,
    );
    console.log(`    faults injected      ${faults || 'none'}`);
    console.log(`    final states         ${states}`);
    console.log(`    unexpected states    ${unexpected} (must be 0)`);
    console.log(`    discrepancies        ${result.discrepancies.length} (must be 0)`);
    console.log(
      `    events               ${result.events.written} written, ${result.events.onNats} on NATS, ${eventsOff} not exactly once (must be 0)`,
    );
    for (const discrepancy of result.discrepancies)
      console.log(`      ${discrepancy.kind} ${discrepancy.id}: ${discrepancy.message}`);
  }
  const [bound, chaos] = runs;
  if (bound && chaos) {
    console.log(
      `  time to settle under faults: ${(chaos.result.settledAfterMs / bound.result.settledAfterMs).toFixed(2)}× the fault-free run`,
    );
  }
  const bad = runs.some(
    ({ result }) =>
      result.discrepancies.length > 0 ||
      result.orders.some((order) => !order.allowed) ||
      result.events.missing.length + result.events.duplicated.length > 0,
  );
  process.exitCode = bad ? 1 : 0;
} finally {
  await runtime.stop();
  await nats.stop();
}
// The handlers' own clients (the bridge's NATS connection, reconnecting) stay open, as in a warm Lambda.
process.exit();
