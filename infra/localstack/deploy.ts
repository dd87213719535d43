import {
  CreateSecretCommand,
  PutSecretValueCommand,
  ResourceExistsException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
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

/**
 * `npm run deploy:localstack`: the same stack, deployed to a running LocalStack (which needs Docker,
 * so this path is not exercised on the project's CI machines). It stores the Stripe keys in
 * LocalStack's Secrets Manager, bootstraps, and deploys with throwaway tables.
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
const localstack = new URL(config.LOCALSTACK_URL);
const env = {
  ...inherited,
  AWS_ENDPOINT_URL: config.LOCALSTACK_URL,
  // Asset buckets are addressed virtual-host style; LocalStack's wildcard domain resolves them.
  AWS_ENDPOINT_URL_S3: `${localstack.protocol}//s3.localhost.localstack.cloud:${localstack.port || '4566'}`,
  AWS_REGION: config.AWS_REGION,
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  CDK_DEFAULT_ACCOUNT: '000000000000',
  CDK_DEFAULT_REGION: config.AWS_REGION,
  CDK_DISABLE_CLI_TELEMETRY: 'true',
  CDK_DISABLE_VERSION_CHECK: '1',
};

const secrets = new SecretsManagerClient({
  endpoint: config.LOCALSTACK_URL,
  region: config.AWS_REGION,
  credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
});
const SecretString = JSON.stringify({
  apiKey: stripeKey,
  webhookSecret: config.STRIPE_WEBHOOK_SECRET,
});
let secretArn: string;
try {
  try {
    secretArn = (await secrets.send(new CreateSecretCommand({ Name: 'order-saga/stripe', SecretString })))
      .ARN!;
  } catch (error) {
    if (!(error instanceof ResourceExistsException)) throw error;
    secretArn = (
      await secrets.send(new PutSecretValueCommand({ SecretId: 'order-saga/stripe', SecretString }))
    ).ARN!;
  }
} catch (error) {
  fail(`storing the Stripe keys in LocalStack's Secrets Manager (${config.LOCALSTACK_URL})`, error);
} finally {
  secrets.destroy();
}

mkdirSync('.tmp', { recursive: true });
const cdk = (...args: string[]) => {
  try {
    execFileSync('npx', ['cdk', ...args], { stdio: 'inherit', env });
  } catch (error) {
    fail(`cdk ${args[0]}`, error);
  }
};
cdk('bootstrap', `aws://000000000000/${config.AWS_REGION}`);
cdk(
  'deploy',
  '--require-approval',
  'never',
  '--context',
  'ephemeral=true',
  ...(config.STRIPE_API_URL ? ['--context', `stripeApiUrl=${config.STRIPE_API_URL}`] : []),
  '--parameters',
  `NatsUrl=${config.NATS_URL}`,
  '--parameters',
  `StripeSecretArn=${secretArn}`,
  '--outputs-file',
  '.tmp/localstack-outputs.json',
);
