import { ListStateMachinesCommand, SFNClient } from '@aws-sdk/client-sfn';
import { relative } from 'node:path';
import { ConfigError } from '../../shared/errors.ts';
import { localConfigFrom } from './config.ts';
import {
  LOCAL_RUNTIME_INFO_FILE,
  removeLocalRuntimeInfo,
  runtimeInfoOf,
  writeLocalRuntimeInfo,
} from './runtime-info.ts';
import { startLocalRuntime } from './runtime.ts';

/** The saga's ARN, as the local endpoint lists it: the one state machine it runs. */
async function localStateMachineArn(endpoint: string): Promise<string> {
  const client = new SFNClient({
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    const { stateMachines = [] } = await client.send(new ListStateMachinesCommand({}));
    const [machine, ...others] = stateMachines;
    if (!machine?.stateMachineArn || others.length > 0) {
      throw new Error(`expected one state machine at ${endpoint}, found ${stateMachines.length}`);
    }
    return machine.stateMachineArn;
  } finally {
    client.destroy();
  }
}

/** `npm start`: the whole system on this machine, in the foreground, until Ctrl-C or SIGTERM. */
let config: ReturnType<typeof localConfigFrom>;
try {
  config = localConfigFrom(process.env);
} catch (error) {
  // A bad knob (LOCAL_FAULTS=webhook.drop=2, say) is a sentence to read, not a stack trace.
  if (!(error instanceof ConfigError)) throw error;
  console.error(`order-saga: ${error.message}`);
  process.exit(2);
}
const started = Date.now();
console.log('order-saga: starting DynamoDB Local, NATS, the Stripe emulator and the saga…');
const runtime = await startLocalRuntime({ config });
const stateMachineArn = await localStateMachineArn(runtime.stepFunctionsUrl).catch(async (error: unknown) => {
  await runtime.stop();
  throw error;
});

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`order-saga: ${signal}, stopping…`);
  // First, so that no operations script targets a runtime that is going away.
  await removeLocalRuntimeInfo().catch((error: unknown) =>
    console.error(`order-saga: could not remove ${LOCAL_RUNTIME_INFO_FILE}: ${String(error)}`),
  );
  await runtime.stop();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

await writeLocalRuntimeInfo(runtimeInfoOf(runtime, stateMachineArn, new Date(started)));

console.log(`order-saga: ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`  API            ${runtime.apiUrl}   (GET ${runtime.apiUrl}/health)`);
console.log(`  NATS           ${runtime.natsUrl}   (streams ORDERS, INVENTORY, PAYMENTS)`);
console.log(`  DynamoDB       ${runtime.dynamodbEndpoint}`);
console.log(
  `  Stripe         ${runtime.stripeUrl}   (emulator; webhooks → ${runtime.apiUrl}/payments/webhook)`,
);
console.log(`  Step Functions ${runtime.stepFunctionsUrl}   (${stateMachineArn})`);
console.log(
  `  Runtime info   ${relative(process.cwd(), LOCAL_RUNTIME_INFO_FILE)}   (npm run saga:redrive -- --failed)`,
);
console.log(
  config.LOCAL_AUTH === 'jwt'
    ? '  Auth           JWT (HS256, LOCAL_JWT_SECRET): npm run token -- --sub c-1 [--admin]'
    : "  Auth           none (LOCAL_AUTH=jwt enforces the stack's JWT authorizer)",
);
console.log('Press Ctrl-C to stop.');
