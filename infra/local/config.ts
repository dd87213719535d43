import { z } from 'zod';
import { WebhookSecretSettingSchema } from '../../functions/payments/webhook-secrets.ts';
import { parseConfig } from '../../shared/config.ts';
import { SettingsSchema } from '../../stacks/settings.ts';
import { DEFAULT_LOCAL_JWT_SECRET } from './auth.ts';
import { parseFaults, parseFaultSeed } from './faults.ts';

/** The webhook secret the local runtime verifies with and the Stripe emulator signs with, unless overridden. */
export const DEFAULT_WEBHOOK_SECRET = 'whsec_order_saga_local_development_only';
/** Any sk_test_ key works against the emulator. */
export const LOCAL_STRIPE_API_KEY = 'sk_test_order_saga_local';

const flag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((value) => value === 'true' || value === '1' || value === 'yes');

/** Runs a faults.ts parser inside zod, so that its one-sentence message names the variable. */
function parsedBy<T>(parse: (text: string | undefined) => T) {
  return z
    .string()
    .optional()
    .transform((text, context) => {
      try {
        return parse(text);
      } catch (error) {
        context.addIssue({ code: 'custom', message: error instanceof Error ? error.message : String(error) });
        return z.NEVER;
      }
    });
}

/** `LOCAL_FAULTS`: comma-separated name=value pairs (faults.ts); unset or empty means none. */
export const FaultsSettingSchema = parsedBy(parseFaults);
/** `LOCAL_FAULTS_SEED`: an integer from 0 to 4294967295; unset means a random seed, printed at start. */
export const FaultSeedSettingSchema = parsedBy(parseFaultSeed);

/** The local runtime's knobs (CONTRACT §1), all optional. */
export const LocalConfigSchema = SettingsSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  NATS_URL: z.string().min(1).optional(),
  STRIPE_WEBHOOK_SECRET: WebhookSecretSettingSchema.default(DEFAULT_WEBHOOK_SECRET),
  SEED_DEMO_DATA: flag.default(true),
  LOCAL_AUTH: z.enum(['none', 'jwt'], { message: 'LOCAL_AUTH must be none or jwt' }).default('none'),
  LOCAL_JWT_SECRET: z
    .string()
    .min(32, { message: 'LOCAL_JWT_SECRET must be at least 32 characters (an HS256 key of 256 bits)' })
    .default(DEFAULT_LOCAL_JWT_SECRET),
  LOG_LEVEL: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR', 'SILENT']).default('INFO'),
  LOCAL_FAULTS: FaultsSettingSchema,
  LOCAL_FAULTS_SEED: FaultSeedSettingSchema,
});
export type LocalConfig = z.infer<typeof LocalConfigSchema>;

export function localConfigFrom(env: NodeJS.ProcessEnv): LocalConfig {
  return parseConfig(LocalConfigSchema, env);
}
