import { z } from 'zod';
import { parseConfig } from '../shared/config.ts';

/**
 * Knobs the stack honours, by the same names as the local runtime (CONTRACT §1). Read from the
 * environment at synth time; anything that differs per deployment and has no safe default is a
 * deploy-time CloudFormation parameter instead (NATS URL, Stripe secret).
 */
export const SettingsSchema = z.object({
  PAYMENT_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(86_400).default(30),
  RESERVATION_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(7 * 86_400)
    .default(900),
  RESERVATION_SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
});
export type Settings = z.infer<typeof SettingsSchema>;

export function settingsFrom(env: NodeJS.ProcessEnv): Settings {
  return parseConfig(SettingsSchema, env);
}
