import { ValidationError } from '../../shared/errors.ts';
import { httpRoute } from '../../shared/http.ts';
import { logger } from '../../shared/logger.ts';
import { paymentDeps } from './deps.ts';
import { applyStripeEvent } from './payments.ts';
import { WebhookSignatureError } from './stripe-gateway.ts';

const deps = await paymentDeps();
const apply = applyStripeEvent(deps);

/** POST /payments/webhook: verify the signature on the raw body, apply the event at most once. */
export const handler = httpRoute({}, async ({ rawBody, headers }) => {
  let event;
  try {
    event = deps.gateway.verifyWebhook(rawBody, headers['stripe-signature']);
  } catch (error) {
    if (error instanceof WebhookSignatureError)
      throw new ValidationError(error.message, [], error.code, { cause: error });
    throw error;
  }
  const result = await apply(event);
  logger.info('stripe webhook', { eventId: event.id, type: event.type, result });
  return { statusCode: 200, body: { received: true } };
});
