import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
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
      const response = await client
        .send(new InvokeCommand({ FunctionName: functionName, Payload: JSON.stringify(request) }))
        .catch((error: unknown) => {
          throw new RefundUnavailableError(`Invoking ${functionName} failed`, { cause: error });
        });
      const text = response.Payload ? Buffer.from(response.Payload).toString('utf8') : 'null';
      if (response.FunctionError)
        throw new RefundUnavailableError(
          `${functionName} failed to refund ${paymentIntentId}: ${text.slice(0, 500)}`,
        );
      return RefundAnswerSchema.parse(JSON.parse(text));
    },
  };
}
