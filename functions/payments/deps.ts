import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import { z } from 'zod';
import { dynamoDocumentClient, lambdaClient, stepFunctionsClient } from '../../shared/aws.ts';
import { parseConfig } from '../../shared/config.ts';
import { dynamoPaymentRepository } from './payment-repository.ts';
import type { PaymentDeps } from './payments.ts';
import { lambdaRefunds } from './refunds.ts';
import { stepFunctionsNotifier } from './saga-notifier.ts';
import {
  checkSignatureHeader,
  stripeGateway,
  verifyStripeWebhook,
  type PaymentGateway,
} from './stripe-gateway.ts';
import { WebhookSecretsSchema } from './webhook-secrets.ts';

/*
 * Each payments function holds one Stripe secret: the steps that call Stripe the API key, the
 * webhook the endpoint's signing secret. Deployed, each is its own Secrets Manager secret (the stack
 * grants each function only its own); locally the runtime sets the value itself.
 */

const ApiKeySchema = z.string().startsWith('sk_', 'a Stripe secret key starts with sk_');

const ApiKeyConfigSchema = z
  .object({
    /** Deployed: the secret holding the API key (`sk_…`, or JSON `{"apiKey": "sk_…"}`). */
    STRIPE_API_KEY_SECRET_ARN: z.string().startsWith('arn:').optional(),
    /** Local: the key itself. It wins over the secret when both are set. */
    STRIPE_SECRET_KEY: ApiKeySchema.optional(),
    /** Another Stripe API base, e.g. the local emulator; unset means api.stripe.com. */
    STRIPE_API_URL: z.url().optional(),
  })
  .refine((config) => config.STRIPE_SECRET_KEY || config.STRIPE_API_KEY_SECRET_ARN, {
    message: 'set STRIPE_API_KEY_SECRET_ARN, or STRIPE_SECRET_KEY',
  });

const TableConfigSchema = z.object({ PAYMENTS_TABLE_NAME: z.string().min(3) });

const WebhookConfigSchema = z
  .object({
    PAYMENTS_TABLE_NAME: z.string().min(3),
    /**
     * Deployed: the secret holding the endpoint's signing secret (`whsec_…`, comma-separated while
     * one is rolled, or JSON `{"webhookSecret": "whsec_…"}`).
     */
    STRIPE_WEBHOOK_SECRET_ARN: z.string().startsWith('arn:').optional(),
    /** Local: the signing secret itself. It wins over the secret when both are set. */
    STRIPE_WEBHOOK_SECRET: WebhookSecretsSchema.optional(),
    /** The function that refunds with the API key, which the webhook does not hold (refund-charge.ts). */
    REFUND_FUNCTION_NAME: z.string().min(1),
  })
  .refine((config) => config.STRIPE_WEBHOOK_SECRET || config.STRIPE_WEBHOOK_SECRET_ARN, {
    message: 'set STRIPE_WEBHOOK_SECRET_ARN, or STRIPE_WEBHOOK_SECRET',
  });

/** A secret's value: the plain string, or the named field of a JSON object (the older layout). */
async function secretValue<T>(arn: string, field: string, schema: z.ZodType<T>): Promise<T> {
  // Cached by Powertools for an hour, in this execution environment.
  const raw = await getSecret<string>(arn, { maxAge: 3600 });
  if (typeof raw !== 'string') throw new Error(`secret ${arn} holds no string`);
  const value = raw.trimStart().startsWith('{') ? (JSON.parse(raw) as Record<string, unknown>)[field] : raw;
  const parsed = schema.safeParse(value);
  if (!parsed.success)
    throw new Error(`secret ${arn}: ${parsed.error.issues.map((issue) => issue.message).join('; ')}`);
  return parsed.data;
}

/**
 * The Stripe API with the API key, for the functions that call Stripe (the saga's payment steps,
 * the customer's payment, the refund); the key is fetched once, at cold start. It holds no webhook
 * secret.
 */
export async function apiKeyGateway(): Promise<PaymentGateway> {
  const config = parseConfig(ApiKeyConfigSchema);
  const apiKey =
    config.STRIPE_SECRET_KEY ??
    (await secretValue(config.STRIPE_API_KEY_SECRET_ARN!, 'apiKey', ApiKeySchema));
  return stripeGateway({ apiKey, ...(config.STRIPE_API_URL ? { apiUrl: config.STRIPE_API_URL } : {}) });
}

/** The ports of the functions that call Stripe and keep the payment: the gateway and the table. */
export async function paymentDeps(): Promise<PaymentDeps> {
  const { PAYMENTS_TABLE_NAME } = parseConfig(TableConfigSchema);
  return {
    payments: dynamoPaymentRepository(dynamoDocumentClient(), PAYMENTS_TABLE_NAME),
    gateway: await apiKeyGateway(),
    saga: stepFunctionsNotifier(stepFunctionsClient()),
    now: () => new Date(),
  };
}

const noApiKey = (): never => {
  throw new Error('the webhook holds no Stripe API key: it only verifies events and asks for refunds');
};

/**
 * The webhook's ports: it verifies with the signing secret, fetched on the first request whose
 * Stripe-Signature header could be Stripe's (an unsigned flood costs no secret fetch), and refunds
 * through the refund function. Nothing else of Stripe is within its reach.
 */
export function webhookDeps(): PaymentDeps {
  const config = parseConfig(WebhookConfigSchema);
  // Powertools keeps the value an hour (a rotated secret reaches a warm function within the hour)
  // and keeps no failure: the next request after a failed fetch tries again.
  const webhookSecrets = async (): Promise<readonly string[]> =>
    config.STRIPE_WEBHOOK_SECRET ??
    secretValue(config.STRIPE_WEBHOOK_SECRET_ARN!, 'webhookSecret', WebhookSecretsSchema);
  const gateway: PaymentGateway = {
    createIntent: noApiKey,
    confirmIntent: noApiKey,
    cancelIntent: noApiKey,
    refund: lambdaRefunds(lambdaClient(), config.REFUND_FUNCTION_NAME).refund,
    async verifyWebhook(rawBody, signatureHeader) {
      checkSignatureHeader(signatureHeader);
      return verifyStripeWebhook(rawBody, signatureHeader, await webhookSecrets());
    },
  };
  return {
    payments: dynamoPaymentRepository(dynamoDocumentClient(), config.PAYMENTS_TABLE_NAME),
    gateway,
    saga: stepFunctionsNotifier(stepFunctionsClient()),
    now: () => new Date(),
  };
}
