import { ValidationError } from '../../shared/errors.ts';
import { httpRoute, issuesToDetails, type HttpHandler } from '../../shared/http.ts';
import { logger } from '../../shared/logger.ts';
import { Metric } from '../../shared/metric-names.ts';
import { addCount } from '../../shared/metrics.ts';
import { InvalidStripeEventError } from './payment.ts';
import { applyStripeEvent, type PaymentDeps, type WebhookResult } from './payments.ts';
import { WebhookSignatureError } from './stripe-gateway.ts';

/** A delivery's result: what applying it did, `rejected` (400: signature or body), `failed` (500). */
function countDelivery(result: WebhookResult | 'rejected' | 'failed'): void {
  addCount(Metric.WebhookOutcomes, { result });
  if (result === 'failed') addCount(Metric.WebhookFailures);
}

/** POST /payments/webhook: verify the signature on the raw body, apply the event at most once. */
export function stripeWebhookHandler(deps: PaymentDeps): HttpHandler {
  const apply = applyStripeEvent(deps);
  return httpRoute({}, async ({ rawBody, headers }) => {
    let result: WebhookResult;
    try {
      const event = await deps.gateway.verifyWebhook(rawBody, headers['stripe-signature']);
      result = await apply(event);
      logger.info('stripe webhook', { eventId: event.id, type: event.type, result });
    } catch (error) {
      if (error instanceof WebhookSignatureError || error instanceof InvalidStripeEventError) {
        countDelivery('rejected');
        const details = error instanceof InvalidStripeEventError ? issuesToDetails(error.issues) : [];
        throw new ValidationError(error.message, details, error.code, { cause: error });
      }
      countDelivery('failed');
      throw error;
    }
    countDelivery(result);
    return { statusCode: 200, body: { received: true } };
  });
}
