import type { LambdaClient } from '@aws-sdk/client-lambda';
import { invokeFunction } from '../../shared/aws.ts';
import { z } from 'zod';
import { OrderIdSchema } from '../../events/common.ts';
import type { PaymentGateway } from './stripe-gateway.ts';

/** What the webhook asks of the refund function (refund-charge.ts): refund this intent's charge. */
export const RefundRequestSchema = z.object({
  orderId: OrderIdSchema,
  paymentIntentId: z.string().startsWith('pi_').max(255),
});
export type RefundRequest = z.infer<typeof RefundRequestSchema>;

const RefundAnswerSchema = z.object({ refundId: z.string().min(1) });

/** The refund function failed or could not be invoked: the webhook answers 500 and Stripe retries. */
export class RefundUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'RefundUnavailableError';
  }
}

/**
 * Refunds through the refund function, synchronously (RequestResponse), for the webhook, which
 * holds no API key. The refund is keyed by the intent at Stripe, so a repeat (Stripe retrying the
 * event after a 500) refunds once.
 */
export function lambdaRefunds(client: LambdaClient, functionName: string): Pick<PaymentGateway, 'refund'> {
  return {
    async refund(orderId, paymentIntentId) {
      const request: RefundRequest = { orderId, paymentIntentId };
      const answer = await invokeFunction(
        client,
        functionName,
        request,
        (message, options) =>
          new RefundUnavailableError(`${message} (refund of ${paymentIntentId})`, options),
      );
      return RefundAnswerSchema.parse(answer);
    },
  };
}
