import { readFileSync } from 'node:fs';
import { inject } from 'vitest';
import { z } from 'zod';
import { localConfigFrom } from '../../infra/local/config.ts';
import type { FaultInjector } from '../../infra/local/faults.ts';
import { startLocalRuntime, type LocalRuntime } from '../../infra/local/runtime.ts';

/**
 * What the end-to-end tests run against. By default the local runtime on the tests' own DynamoDB
 * Local and nats-server. With E2E_API_URL set, a deployed stack (e.g. `npm run deploy:localstack`
 * with PAYMENT_TIMEOUT_SECONDS=8 and the Stripe emulator): E2E_NATS_URL is the NATS it publishes
 * to, E2E_STRIPE_URL the Stripe emulator the stack was pointed at, the table names come from the CDK
 * outputs file, and DynamoDB is reached through the usual
 * AWS_ENDPOINT_URL / credentials of the environment.
 */
export interface Target {
  apiUrl: string;
  natsUrl: string;
  /** The Stripe API the payment functions talk to (the emulator), where a customer confirms a payment. */
  stripeUrl: string;
  /** Undefined: the SDK's default endpoint resolution (AWS, or AWS_ENDPOINT_URL). */
  dynamodbEndpoint: string | undefined;
  tableNames: { orders: string; inventory: string; payments: string };
  /** Resolves when the outbox has been handed to the bridge (immediately for a deployed stack). */
  drained(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The local runtime on the tests' own DynamoDB Local (tables of its own) and nats-server, quiet,
 * with quick webhook retries; `config` overrides the knobs (PAYMENT_TIMEOUT_SECONDS is 8 here).
 */
export function startTestRuntime(
  options: {
    config?: Record<string, string>;
    faults?: FaultInjector;
    retryDelayMs?: number;
    streamRetryDelayMs?: number;
    log?: (line: string) => void;
  } = {},
): Promise<LocalRuntime> {
  return startLocalRuntime({
    config: localConfigFrom({
      PORT: '0',
      NATS_URL: inject('natsUrl'),
      SEED_DEMO_DATA: 'false',
      LOG_LEVEL: 'SILENT',
      PAYMENT_TIMEOUT_SECONDS: '8',
      ...options.config,
    }),
    dynamodbEndpoint: inject('dynamodbEndpoint'),
    webhookRetry: { maxAttempts: 5, baseDelayMs: 50 },
    ...(options.faults ? { faults: options.faults } : {}),
    ...(options.retryDelayMs === undefined ? {} : { retryDelayMs: options.retryDelayMs }),
    ...(options.streamRetryDelayMs === undefined ? {} : { streamRetryDelayMs: options.streamRetryDelayMs }),
    log: options.log ?? (() => {}),
  });
}

export async function startTarget(): Promise<Target> {
  if (process.env.E2E_API_URL) return deployedTarget();
  const runtime = await startTestRuntime();
  return {
    apiUrl: runtime.apiUrl,
    natsUrl: runtime.natsUrl,
    stripeUrl: runtime.stripeUrl,
    dynamodbEndpoint: runtime.dynamodbEndpoint,
    tableNames: runtime.tableNames,
    drained: () => runtime.drained(),
    stop: () => runtime.stop(),
  };
}

function deployedTarget(): Target {
  const env = z
    .object({
      E2E_API_URL: z.url(),
      E2E_NATS_URL: z.string().min(1),
      // The emulator the stack's stripeApiUrl points at (npm run stripe:emulator), as the tests reach it.
      E2E_STRIPE_URL: z.url().default('http://127.0.0.1:12111'),
      E2E_OUTPUTS_FILE: z.string().default('.tmp/outputs-localstack.json'),
      // Unset: the one stack the file holds (npm run deploy:localstack writes OrderSaga-localstack).
      E2E_STACK_NAME: z.string().optional(),
    })
    .parse(process.env);
  const outputs = z
    .record(
      z.string(),
      z.object({
        OrdersTableName: z.string(),
        InventoryTableName: z.string(),
        PaymentsTableName: z.string(),
      }),
    )
    .parse(JSON.parse(readFileSync(env.E2E_OUTPUTS_FILE, 'utf8')));
  const stacks = Object.keys(outputs);
  const stackName = env.E2E_STACK_NAME ?? (stacks.length === 1 ? stacks[0]! : undefined);
  if (!stackName)
    throw new Error(
      `${env.E2E_OUTPUTS_FILE} holds ${stacks.length} stacks (${stacks.join(', ')}): set E2E_STACK_NAME`,
    );
  const stack = outputs[stackName];
  if (!stack) throw new Error(`${env.E2E_OUTPUTS_FILE} has no stack ${stackName}`);
  return {
    apiUrl: env.E2E_API_URL.replace(/\/$/, ''),
    natsUrl: env.E2E_NATS_URL,
    stripeUrl: env.E2E_STRIPE_URL,
    dynamodbEndpoint: undefined,
    tableNames: {
      orders: stack.OrdersTableName,
      inventory: stack.InventoryTableName,
      payments: stack.PaymentsTableName,
    },
    drained: async () => {},
    stop: async () => {},
  };
}
