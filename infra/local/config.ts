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

/** `true`/`false`, `1`/`0`, `yes`/`no`. */
export const FlagSettingSchema = z
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

/** One NATS server of a `NATS_URL`, as the client reaches it. */
export interface NatsServerAddress {
  url: string;
  host: string;
  port: number;
}

/**
 * The servers of a `NATS_URL`: one or several, comma-separated, each `nats://host:port`, `tls://…`
 * or a bare `host:port` (the client's default scheme; port default 4222). Throws on anything else.
 */
export function natsServerAddresses(natsUrl: string): NatsServerAddress[] {
  return natsUrl.split(',').map((entry) => {
    const url = entry.trim();
    let parsed: URL;
    try {
      parsed = new URL(url.includes('://') ? url : `nats://${url}`);
    } catch {
      throw new Error(`'${url}' is not a server URL`);
    }
    if (parsed.protocol !== 'nats:' && parsed.protocol !== 'tls:')
      throw new Error(`'${url}' is not a nats:// or tls:// URL`);
    if (!parsed.hostname) throw new Error(`'${url}' names no host`);
    return {
      url,
      host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: parsed.port ? Number(parsed.port) : 4222,
    };
  });
}

const NatsUrlSettingSchema = z
  .string()
  .min(1)
  .refine(
    (value) => {
      try {
        return natsServerAddresses(value).length > 0;
      } catch {
        return false;
      }
    },
    {
      message:
        'must be nats://host:port, or several comma-separated (e.g. nats://127.0.0.1:4222); unset it to let npm start find or start one',
    },
  );

/** `LOCAL_FAULTS`: comma-separated name=value pairs (faults.ts); unset or empty means none. */
export const FaultsSettingSchema = parsedBy(parseFaults);
/** `LOCAL_FAULTS_SEED`: an integer from 0 to 4294967295; unset means a random seed, printed at start. */
export const FaultSeedSettingSchema = parsedBy(parseFaultSeed);

/** The local runtime's knobs (CONTRACT §1), all optional. */
export const LocalConfigSchema = SettingsSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65_535).default(3000),
  NATS_URL: NatsUrlSettingSchema.optional(),
  /** A `.creds` or NKEY seed file the runtime and the bridge connect to NATS with (docs/nats.md). */
  NATS_CREDS: z.string().min(1).optional(),
  /** The PEM file of the CA that signed NATS's certificates: TLS, with only that CA trusted. */
  NATS_TLS_CA: z.string().min(1).optional(),
  /** User and password to connect to NATS with (instead of NATS_CREDS). */
  NATS_USER: z.string().min(1).optional(),
  NATS_PASSWORD: z.string().min(1).optional(),
  /**
   * `true`: existing JetStream streams whose settings differ from the contract's are updated to it.
   * Default `false`: the start stops and names each difference (shared/nats.ts `ensureStreams`).
   */
  NATS_UPDATE_STREAMS: FlagSettingSchema.default(false),
  STRIPE_WEBHOOK_SECRET: WebhookSecretSettingSchema.default(DEFAULT_WEBHOOK_SECRET),
  SEED_DEMO_DATA: FlagSettingSchema.default(true),
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
