import { relative } from 'node:path';
import { localConfigFrom } from './config.ts';
import {
  checkPort,
  configOrExit,
  EXIT_CODES,
  exitOnProblems,
  formatProblem,
  preflightLocalRuntime,
  streamProblems,
  systemProbes,
  type PreflightProblem,
} from './preflight.ts';

/*
 * `npm start`: the whole system on this machine, in the foreground, until Ctrl-C or SIGTERM.
 * Exit codes (docs/local-runtime.md): 2 a bad knob, 3 a missing prerequisite, 1 anything else;
 * each problem is one line with its fix, never a stack trace for a known one.
 */
const PREFIX = 'order-saga';

// A bad knob (LOCAL_FAULTS=webhook.drop=2, say) is a sentence to read, not a stack trace.
const config = configOrExit(PREFIX, () => localConfigFrom(process.env));
const preflight = await preflightLocalRuntime(config, systemProbes);
exitOnProblems(PREFIX, preflight.problems);

// Only now the heavy modules (the CDK, the SDKs): a pre-flight problem shows at once.
const [{ startLocalRuntime }, runtimeInfo, nats, { ListStateMachinesCommand, SFNClient }] = await Promise.all(
  [
    import('./runtime.ts'),
    import('./runtime-info.ts'),
    import('../../shared/nats.ts'),
    import('@aws-sdk/client-sfn'),
  ],
);

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

/** A start that failed after the pre-flight: known causes as pre-flight lines, anything else as an error. */
function exitOnStartFailure(error: unknown): never {
  let problems: PreflightProblem[] | undefined;
  if (error instanceof nats.StreamSettingsDifferError) {
    // The streams changed between the pre-flight and the start, or the pre-flight could not read them.
    problems = streamProblems(
      preflight.nats.url ?? config.NATS_URL ?? '',
      error.differences,
      config.NATS_URL,
    );
  } else if (error instanceof nats.StreamUpdateError) {
    problems = [
      {
        reason: error.message,
        fix: `delete the stream if nothing else needs it (nats stream rm ${error.stream}), or use a server of its own (unset NATS_URL)`,
      },
    ];
  } else if ((error as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE') {
    // Taken between the pre-flight and the gateway's listen.
    const problem = checkPort({
      host: '127.0.0.1',
      port: config.PORT,
      code: 'EADDRINUSE',
      knob: 'PORT',
      command: 'npm start',
    });
    problems = problem ? [problem] : undefined;
  }
  if (problems) {
    for (const problem of problems) console.error(`${PREFIX}: ${formatProblem(problem)}`);
    process.exit(EXIT_CODES.missingPrerequisite);
  }
  // Unexpected: the message first, then the stack, which whoever fixes it needs.
  console.error(`${PREFIX}: could not start: ${error instanceof Error ? error.message : String(error)}`);
  if (error instanceof Error && error.stack) console.error(error.stack);
  process.exit(EXIT_CODES.failure);
}

const started = Date.now();
console.log(`${PREFIX}: starting DynamoDB Local, NATS, the Stripe emulator and the saga…`);
const runtime = await startLocalRuntime({ config }).catch(exitOnStartFailure);
const stateMachineArn = await localStateMachineArn(runtime.stepFunctionsUrl).catch(async (error: unknown) => {
  await runtime.stop();
  return exitOnStartFailure(error);
});

let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  console.log(`${PREFIX}: ${signal}, stopping…`);
  // First, so that no operations script targets a runtime that is going away.
  await runtimeInfo
    .removeLocalRuntimeInfo()
    .catch((error: unknown) =>
      console.error(`${PREFIX}: could not remove ${runtimeInfo.LOCAL_RUNTIME_INFO_FILE}: ${String(error)}`),
    );
  await runtime.stop();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

await runtimeInfo.writeLocalRuntimeInfo(
  runtimeInfo.runtimeInfoOf(runtime, stateMachineArn, new Date(started)),
);

/** `ORDERS, INVENTORY, PAYMENTS created` or `ORDERS updated; INVENTORY, PAYMENTS already there`. */
function streamsSummary({ created, updated, unchanged }: typeof runtime.natsStreams): string {
  const groups: Array<[string[], string]> = [
    [created, 'created'],
    [updated, 'updated (NATS_UPDATE_STREAMS)'],
    [unchanged, 'already there'],
  ];
  return groups
    .filter(([names]) => names.length > 0)
    .map(([names, what]) => `${names.join(', ')} ${what}`)
    .join('; ');
}

console.log(`${PREFIX}: ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
console.log(`  API            ${runtime.apiUrl}   (GET ${runtime.apiUrl}/health)`);
console.log(`  API reference  ${runtime.apiUrl}/docs   (${runtime.apiUrl}/openapi.json)`);
console.log(
  runtime.natsShared
    ? `  NATS           ${runtime.natsUrl}   (an existing server, shared; this runtime did not start it and leaves it running)`
    : `  NATS           ${runtime.natsUrl}   (its own nats-server -js, temporary store, stopped with it)`,
);
console.log(`                 streams: ${streamsSummary(runtime.natsStreams)}`);
console.log(`  DynamoDB       ${runtime.dynamodbEndpoint}   (DynamoDB Local, in memory: gone when it stops)`);
console.log(
  `  Stripe         ${runtime.stripeUrl}   (emulator; webhooks → ${runtime.apiUrl}/payments/webhook)`,
);
console.log(`  Step Functions ${runtime.stepFunctionsUrl}   (${stateMachineArn})`);
console.log(
  `  Runtime info   ${relative(process.cwd(), runtimeInfo.LOCAL_RUNTIME_INFO_FILE)}   (npm run saga:redrive -- --failed)`,
);
console.log(
  config.LOCAL_AUTH === 'jwt'
    ? '  Auth           JWT (HS256, LOCAL_JWT_SECRET): npm run token -- --sub c-1 [--admin]'
    : "  Auth           none (LOCAL_AUTH=jwt enforces the stack's JWT authorizer)",
);
console.log('Press Ctrl-C to stop.');
