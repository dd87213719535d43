import { z } from 'zod';
import { WebhookSecretSettingSchema } from '../../functions/payments/webhook-secrets.ts';
import { parseConfig } from '../../shared/config.ts';
import { DEFAULT_WEBHOOK_SECRET, FaultSeedSettingSchema, FaultsSettingSchema } from './config.ts';
import { faultInjector, FAULT_NAMES, randomFaultSeed, type FaultSpec } from './faults.ts';
import { startStripeEmulator } from './stripe-emulator.ts';

/**
 * `npm run stripe:emulator`: the local Stripe emulator on its own, for a deployed stack (LocalStack)
 * whose payment functions were pointed at it with the `stripeApiUrl` context. `LOCAL_FAULTS` and
 * `LOCAL_FAULTS_SEED` work as with `npm start`, for the stripe.* and webhook.* faults.
 */
const config = parseConfig(
  z.object({
    STRIPE_EMULATOR_PORT: z.coerce.number().int().min(0).max(65_535).default(12_111),
    // LocalStack's Lambda containers reach the host on the Docker bridge, not on 127.0.0.1.
    STRIPE_EMULATOR_HOST: z.string().min(1).default('127.0.0.1'),
    STRIPE_WEBHOOK_SECRET: WebhookSecretSettingSchema.default(DEFAULT_WEBHOOK_SECRET),
    STRIPE_WEBHOOK_URL: z.url({ message: 'set STRIPE_WEBHOOK_URL to <API base>/payments/webhook' }),
    LOCAL_FAULTS: FaultsSettingSchema,
    LOCAL_FAULTS_SEED: FaultSeedSettingSchema,
  }),
);

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
});
console.log(`Stripe emulator on ${emulator.url}; webhooks → ${config.STRIPE_WEBHOOK_URL}. Ctrl-C stops it.`);
console.log(`faults in force: ${faults.describe()}`);
const stop = () => void emulator.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
