import {
  CreateSecretCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { z } from 'zod';
import { WebhookSecretSettingSchema } from '../../functions/payments/webhook-secrets.ts';
import { parseConfig } from '../../shared/config.ts';
import { DEFAULT_WEBHOOK_SECRET, LOCAL_STRIPE_API_KEY } from '../local/config.ts';
import {
  configOrExit,
  EXIT_CODES,
  exitOnProblems,
  preflightLocalstack,
  systemProbes,
} from '../local/preflight.ts';
import { deployCommand, outputsFile } from '../aws/commands.ts';
import { runCdk } from '../aws/run-cdk.ts';

/**
 * `npm run deploy:localstack`: the same stack, deployed to a running LocalStack (which needs Docker,
 * so this path is not exercised on the project's CI machines; `npm run localstack:start` starts
 * it, with the LOCALSTACK_AUTH_TOKEN current images need). It stores the two Stripe secrets in
 * LocalStack's Secrets Manager, bootstraps with cdklocal, and deploys the stage `localstack`
 * (throwaway tables, no reserved concurrency), writing its outputs to .tmp/outputs-localstack.json.
 *
 *   NATS_URL=nats://host.docker.internal:4222 \
 *   STRIPE_API_URL=http://host.docker.internal:12111 npm run deploy:localstack
 *
 * NATS_URL and STRIPE_API_URL must be reachable from LocalStack's Lambda containers; run the
 * emulator with `STRIPE_EMULATOR_HOST=0.0.0.0 STRIPE_WEBHOOK_URL=<API>/payments/webhook npm run stripe:emulator`.
 * Exit codes as `npm start`'s: 2 a bad knob, 3 LocalStack not answering, 1 a failed step (its
 * output above says why).
 */
const PREFIX = 'deploy:localstack';
/** An ephemeral stage of its own: OrderSaga-localstack, everything removed with it. */
const STAGE = 'localstack';
const config = configOrExit(PREFIX, () =>
  parseConfig(
    z
      .object({
        LOCALSTACK_URL: z.url().default('http://localhost:4566'),
        AWS_REGION: z.string().default('us-east-1'),
        NATS_URL: z
          .string({
            message:
              'set it to a NATS server reachable from LocalStack, e.g. nats://host.docker.internal:4222',
          })
          .min(1, 'set it to a NATS server reachable from LocalStack, e.g. nats://host.docker.internal:4222'),
        STRIPE_API_URL: z.url().optional(),
        STRIPE_SECRET_KEY: z.string().startsWith('sk_').optional(),
        STRIPE_WEBHOOK_SECRET: WebhookSecretSettingSchema.default(DEFAULT_WEBHOOK_SECRET),
      })
      .refine((env) => env.STRIPE_API_URL || env.STRIPE_SECRET_KEY, {
        message:
          'without STRIPE_API_URL (the emulator) the functions call Stripe itself: set STRIPE_SECRET_KEY to a test key',
      }),
  ),
);
exitOnProblems(PREFIX, await preflightLocalstack(config, systemProbes));

/** A step that failed: one line (the CDK CLI has printed its own output above), no stack trace. */
function fail(step: string, error: unknown): never {
  const status = (error as { status?: unknown }).status;
  console.error(
    `${PREFIX}: ${step} failed: ${
      typeof status === 'number'
        ? `exit ${status} (its output is above)`
        : error instanceof Error
          ? error.message
          : String(error)
    }`,
  );
  process.exit(EXIT_CODES.failure);
}
const stripeKey = config.STRIPE_SECRET_KEY ?? LOCAL_STRIPE_API_KEY;

// A profile or session token would make the CDK CLI resolve another account than LocalStack's.
const {
  AWS_PROFILE: _profile,
  AWS_DEFAULT_PROFILE: _defaultProfile,
  AWS_SESSION_TOKEN: _token,
  ...inherited
} = process.env;
const env = {
  ...inherited,
  // cdklocal reads the endpoint from here; the CDK app's own SDK calls (none) would too.
  AWS_ENDPOINT_URL: config.LOCALSTACK_URL,
  AWS_REGION: config.AWS_REGION,
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  CDK_DEFAULT_ACCOUNT: '000000000000',
  CDK_DEFAULT_REGION: config.AWS_REGION,
};

const secrets = new SecretsManagerClient({
  endpoint: config.LOCALSTACK_URL,
  region: config.AWS_REGION,
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});
/** Creates or updates one secret; its ARN. */
async function storeSecret(Name: string, SecretString: string): Promise<string> {
  try {
    return (await secrets.send(new CreateSecretCommand({ Name, SecretString }))).ARN!;
  } catch (error) {
    if (!(error instanceof ResourceExistsException)) throw error;
    return (await secrets.send(new PutSecretValueCommand({ SecretId: Name, SecretString }))).ARN!;
  }
}
// Two secrets, as on AWS: the payment steps read the key, the webhook the signing secret.
let apiKeySecretArn: string;
let webhookSecretArn: string;
try {
  apiKeySecretArn = await storeSecret('order-saga/stripe-api-key', stripeKey);
  webhookSecretArn = await storeSecret('order-saga/stripe-webhook', config.STRIPE_WEBHOOK_SECRET);
} catch (error) {
  fail(`storing the Stripe secrets in LocalStack's Secrets Manager (${config.LOCALSTACK_URL})`, error);
} finally {
  secrets.destroy();
}

const command = deployCommand(
  {
    STAGE,
    NATS_URL: config.NATS_URL,
    STRIPE_API_KEY_SECRET_ARN: apiKeySecretArn,
    STRIPE_WEBHOOK_SECRET_ARN: webhookSecretArn,
    // LocalStack's account has no concurrency to reserve.
    TASK_CONCURRENCY: 'off',
    WEBHOOK_CONCURRENCY: 'off',
  },
  [
    '--require-approval',
    'never',
    ...(config.STRIPE_API_URL ? ['--context', `stripeApiUrl=${config.STRIPE_API_URL}`] : []),
    ...process.argv.slice(2),
  ],
);
// cdklocal (aws-cdk-local) points the CDK CLI at LocalStack: endpoints, test credentials, buckets.
const cdklocal = (args: string[], step: string) => {
  const status = runCdk({ ...command, args }, { binary: 'cdklocal', env });
  if (status !== 0) fail(step, { status });
};
cdklocal(['bootstrap', `aws://000000000000/${config.AWS_REGION}`], 'cdklocal bootstrap');
cdklocal(command.args, 'cdklocal deploy');
console.log(`${PREFIX}: ${command.stack} deployed; outputs in ${outputsFile(STAGE)}`);
