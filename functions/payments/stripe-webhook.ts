import { webhookDeps } from './deps.ts';
import { stripeWebhookHandler } from './webhook-route.ts';

/** POST /payments/webhook (the Lambda entry): the route with this environment's ports. */
export const handler = stripeWebhookHandler(webhookDeps());
