import { z } from 'zod';
import { WebhookSecretSettingSchema } from '../../functions/payments/webhook-secrets.ts';
import { parseConfig } from '../../shared/config.ts';
import { DEFAULT_WEBHOOK_SECRET, FaultSeedSettingSchema, FaultsSettingSchema } from './config.ts';
import { faultInjector, FAULT_NAMES, randomFaultSeed, type FaultSpec } from './faults.ts';
import {
  configOrExit,
  EXIT_CODES,
  exitOnProblems,
  preflightStripeEmulator,
  systemProbes,
} from './preflight.ts';
import { startStripeEmulator } from './stripe-emulator/index.ts';

/**
 * `npm run stripe:emulator`: the local Stripe emulator on its own, for a deployed stack (LocalStack)
 * whose payment functions were pointed at it with the `stripeApiUrl` context. `LOCAL_FAULTS` and
 * `LOCAL_FAULTS_SEED` work as with `npm start`, for the stripe.* and webhook.* faults. Webhooks go
 * to `STRIPE_WEBHOOK_URL`, by default the local API's route (`http://127.0.0.1:${PORT:-3000}/payments/webhook`);
 * for a stack on LocalStack, set it to that API's `/payments/webhook`. Exit codes as `npm start`'s
 * (2 a bad knob, 3 the port taken).
 */
const PREFIX = 'stripe:emulator';
const config = configOrExit(PREFIX, () =>
  parseConfig(
    z
      .object({
        STRIPE_EMULATOR_PORT: z.coerce.number().int().min(0).max(65_535).default(12_111),
        // LocalStack's Lambda containers reach the host on the Docker bridge, not on 127.0.0.1.
        STRIPE_EMULATOR_HOST: z.string().min(1).default('127.0.0.1'),
        STRIPE_WEBHOOK_SECRET: WebhookSecretSettingSchema.default(DEFAULT_WEBHOOK_SECRET),
        // The API whose webhook route is the default: npm start's, on its PORT.
        PORT: z.coerce.number().int().min(1).max(65_535).default(3000),
        STRIPE_WEBHOOK_URL: z
          .url({
            message:
              'must be a URL, <API base URL>/payments/webhook (unset: http://127.0.0.1:${PORT:-3000}/payments/webhook)',
          })
          .optional(),
        LOCAL_FAULTS: FaultsSettingSchema,
        LOCAL_FAULTS_SEED: FaultSeedSettingSchema,
      })
      .transform(({ PORT, STRIPE_WEBHOOK_URL, ...rest }) => ({
        ...rest,
        STRIPE_WEBHOOK_URL: STRIPE_WEBHOOK_URL ?? `http://127.0.0.1:${PORT}/payments/webhook`,
        webhookUrlIsDefault: STRIPE_WEBHOOK_URL === undefined,
      })),
  ),
);
exitOnProblems(PREFIX, await preflightStripeEmulator(config, systemProbes));

// Lambda faults are injected by `npm start`'s Lambda host; here no Lambda runs.
const spec: FaultSpec = {};
for (const name of FAULT_NAMES) {
  const value = config.LOCAL_FAULTS[name];
  if (value === undefined) continue;
  if (name.startsWith('lambda.')) {
    console.log(`${name} has no effect here: Lambda faults apply to the saga's tasks under npm start.`);
  } else {
    spec[name] = value;
  }
}
const faults = faultInjector({
  spec,
  seed: config.LOCAL_FAULTS_SEED ?? randomFaultSeed(),
  log: (line) => console.log(line),
});

const emulator = await startStripeEmulator({
  port: config.STRIPE_EMULATOR_PORT,
  host: config.STRIPE_EMULATOR_HOST,
  webhookSecret: config.STRIPE_WEBHOOK_SECRET,
  webhookUrl: config.STRIPE_WEBHOOK_URL,
  faults,
}).catch((error: unknown) => {
  // Taken between the pre-flight and the listen, or anything else: one line.
  console.error(`${PREFIX}: could not start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(
    (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
      ? EXIT_CODES.missingPrerequisite
      : EXIT_CODES.failure,
  );
});
// Before the lines that say it is up: whoever reads them may stop it at once.
const stop = () => void emulator.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
console.log(
  `Stripe emulator on ${emulator.url}; webhooks → ${config.STRIPE_WEBHOOK_URL}${
    config.webhookUrlIsDefault
      ? ' (npm start on PORT; for a deployed API set STRIPE_WEBHOOK_URL=<API base URL>/payments/webhook)'
      : ''
  }. Ctrl-C stops it.`,
);
console.log(`faults in force: ${faults.describe()}`);
