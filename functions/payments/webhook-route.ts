import { ValidationError } from '../../shared/errors.ts';
import { httpRoute, issuesToDetails, type HttpHandler } from '../../shared/http.ts';
import { logger } from '../../shared/logger.ts';
import { InvalidStripeEventError } from './payment.ts';
import { applyStripeEvent, type PaymentDeps } from './payments.ts';
import { WebhookSignatureError } from './stripe-gateway.ts';

/** POST /payments/webhook: verify the signature on the raw body, apply the event at most once. */
export function stripeWebhookHandler(deps: PaymentDeps): HttpHandler {
  const apply = applyStripeEvent(deps);
  return httpRoute({}, async ({ rawBody, headers }) => {
    try {
      const event = deps.gateway.verifyWebhook(rawBody, headers['stripe-signature']);
      const result = await apply(event);
      logger.info('stripe webhook', { eventId: event.id, type: event.type, result });
      return { statusCode: 200, body: { received: true } };
    } catch (error) {
      if (error instanceof WebhookSignatureError || error instanceof InvalidStripeEventError) {
        const details = error instanceof InvalidStripeEventError ? issuesToDetails(error.issues) : [];
        throw new ValidationError(error.message, details, error.code, { cause: error });
      }
      throw error;
    }
  });
}
