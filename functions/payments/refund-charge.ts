import { taskHandler } from '../../shared/lambda-edge.ts';
import { apiKeyGateway } from './deps.ts';
import { RefundRequestSchema } from './refunds.ts';

const gateway = await apiKeyGateway();

/**
 * Refunds a PaymentIntent's charge in full, once per intent (Stripe's idempotency key), for the
 * webhook, which holds no API key: a stray charge, or a success after its payment was closed.
 * Invoked by the webhook only; it keeps nothing itself (the webhook records the refund).
 */
export const handler = taskHandler(RefundRequestSchema, ({ orderId, paymentIntentId }) =>
  gateway.refund(orderId, paymentIntentId),
);
