import { z } from 'zod';

/**
 * The endpoint secrets in a configured value: one `whsec_…` secret, or several separated by commas
 * while a secret is rolled (Stripe then signs every event with each active secret).
 */
export function parseWebhookSecrets(value: string): string[] {
  return value
    .split(',')
    .map((secret) => secret.trim())
    .filter((secret) => secret !== '');
}

const EACH_SECRET =
  'each comma-separated webhook secret must be whsec_ followed by the secret, without spaces';
const AT_LEAST_ONE = 'name at least one webhook secret (whsec_…)';

/**
 * The one rule for a webhook secret setting (STRIPE_WEBHOOK_SECRET, the Stripe secret's
 * `webhookSecret`), wherever it is read: one `whsec_…` endpoint secret, or several separated by
 * commas while one is rolled. Parses to the list of secrets.
 */
export const WebhookSecretsSchema = z
  .string()
  .transform(parseWebhookSecrets)
  .pipe(z.array(z.string().regex(/^whsec_\S+$/, EACH_SECRET)).min(1, AT_LEAST_ONE));

/**
 * The same rule for a setting that is passed on as written (comma-separated, e.g. to the Stripe
 * emulator or into a secret): validates, and keeps the string. Messages never repeat the value.
 */
export const WebhookSecretSettingSchema = z.string().superRefine((value, context) => {
  const result = WebhookSecretsSchema.safeParse(value);
  if (result.success) return;
  for (const message of new Set(result.error.issues.map((issue) => issue.message))) {
    context.addIssue({ code: 'custom', message });
  }
});
