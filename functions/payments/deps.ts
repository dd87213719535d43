import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { z } from 'zod';
import { dynamoDocumentClient, stepFunctionsClient } from '../../shared/aws.ts';
import { parseConfig } from '../../shared/config.ts';
import { dynamoPaymentRepository } from './payment-repository.ts';
import type { PaymentDeps } from './payments.ts';
import { stepFunctionsNotifier } from './saga-notifier.ts';
import { stripeGateway } from './stripe-gateway.ts';
import { WebhookSecretsSchema } from './webhook-secrets.ts';

const ConfigSchema = z
  .object({
    PAYMENTS_TABLE_NAME: z.string().min(3),
    /**
     * Deployed: a Secrets Manager secret holding {"apiKey": "sk_...", "webhookSecret": "whsec_..."}
     * (`webhookSecret` may list several secrets, comma-separated, during a rotation).
     */
    STRIPE_SECRET_ARN: z.string().startsWith('arn:').optional(),
    /** Local: the keys themselves. They win over the secret when both are set. */
    STRIPE_SECRET_KEY: z.string().startsWith('sk_').optional(),
    STRIPE_WEBHOOK_SECRET: WebhookSecretsSchema.optional(),
    /** Another Stripe API base, e.g. the local emulator; unset means api.stripe.com. */
    STRIPE_API_URL: z.url().optional(),
  })
  .refine(
    (config) => (config.STRIPE_SECRET_KEY && config.STRIPE_WEBHOOK_SECRET) || config.STRIPE_SECRET_ARN,
    {
      message: 'set STRIPE_SECRET_ARN, or both STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET',
    },
  );

const StripeSecretSchema = z.object({
  apiKey: z.string().startsWith('sk_'),
  webhookSecret: WebhookSecretsSchema,
});

/**
 * Builds the payment handlers' ports once per execution environment; the Stripe secret is fetched
 * once, at cold start (a rotated secret reaches a function at its next cold start).
 */
export async function paymentDeps(): Promise<PaymentDeps> {
  const config = parseConfig(ConfigSchema);
  const secret =
    config.STRIPE_SECRET_KEY && config.STRIPE_WEBHOOK_SECRET
      ? { apiKey: config.STRIPE_SECRET_KEY, webhookSecret: config.STRIPE_WEBHOOK_SECRET }
      : StripeSecretSchema.parse(
          await getSecret(config.STRIPE_SECRET_ARN!, { transform: 'json', maxAge: 3600 }),
        );
  return {
    payments: dynamoPaymentRepository(dynamoDocumentClient(), config.PAYMENTS_TABLE_NAME),
    gateway: stripeGateway({
      apiKey: secret.apiKey,
      webhookSecrets: secret.webhookSecret,
      ...(config.STRIPE_API_URL ? { apiUrl: config.STRIPE_API_URL } : {}),
    }),
    saga: stepFunctionsNotifier(stepFunctionsClient()),
    now: () => new Date(),
  };
}
