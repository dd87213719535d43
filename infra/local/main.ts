import { localConfigFrom } from './config.ts';
import { startLocalRuntime } from './runtime.ts';

/** `npm start`: the whole system on this machine, in the foreground, until Ctrl-C or SIGTERM. */
const config = localConfigFrom(process.env);
const started = Date.now();
console.log('order-saga: starting DynamoDB Local, NATS, the Stripe emulator and the saga…');
const runtime = await startLocalRuntime({ config });

console.log(`order-saga: ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`  API        ${runtime.apiUrl}   (GET ${runtime.apiUrl}/health)`);
console.log(`  NATS       ${runtime.natsUrl}   (streams ORDERS, INVENTORY, PAYMENTS)`);
console.log(`  DynamoDB   ${runtime.dynamodbEndpoint}`);
console.log(`  Stripe     ${runtime.stripeUrl}   (emulator; webhooks → ${runtime.apiUrl}/payments/webhook)`);
console.log('Press Ctrl-C to stop.');

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`order-saga: ${signal}, stopping…`);
  await runtime.stop();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
