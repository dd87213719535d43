import type { LambdaClient } from '@aws-sdk/client-lambda';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { invokeFunction } from '../../shared/aws.ts';
import { PaymentLastErrorSchema } from '../../shared/saga.ts';
import type { CheckoutView } from './order.ts';

/** What the orders service asks of the payments service for its customer (functions/payments/customer-payment.ts). */
export interface OrderPayments {
  /** Cancels the order's payment at Stripe: `paid` when the payment won the race, `none` when none exists yet. */
  cancelForCustomer(orderId: string): Promise<'canceled' | 'paid' | 'none'>;
  /**
   * What the customer checks out with while the payment is open: the PaymentIntent's client secret,
   * and the last declined attempt of a browser checkout (the customer may try another card).
   */
  checkout(orderId: string): Promise<CheckoutView>;
}

const CancelAnswerSchema = z.object({ outcome: z.enum(['canceled', 'paid', 'none']) });
const CheckoutAnswerSchema = z.object({
  clientSecret: z.string().min(1).nullable(),
  // Absent from a payments function deployed before it knew of declines the customer may retry.
  lastError: PaymentLastErrorSchema.nullish(),
});

/** The payments function failed or could not be invoked: a fault the caller reports as a 5xx. */
export class PaymentsUnavailableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'PaymentsUnavailableError';
  }
}

const ATTEMPTS = 3;

/**
 * Invokes the payments service's customer-payment function synchronously (RequestResponse). Both
 * actions are idempotent, so a failed attempt (Stripe briefly failing behind it, say) is repeated a
 * couple of times, with jitter, before the request answers 5xx.
 */
export function lambdaOrderPayments(client: LambdaClient, functionName: string): OrderPayments {
  const invoke = async (request: { action: 'cancel' | 'clientSecret'; orderId: string }) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await invokeOnce(request);
      } catch (error) {
        if (!(error instanceof PaymentsUnavailableError) || attempt >= ATTEMPTS) throw error;
        await sleep(Math.random() * 200 * 2 ** attempt);
      }
    }
  };
  const invokeOnce = (request: { action: 'cancel' | 'clientSecret'; orderId: string }) =>
    invokeFunction(
      client,
      functionName,
      request,
      (message, options) => new PaymentsUnavailableError(`${message} (${request.action})`, options),
    );
  return {
    async cancelForCustomer(orderId) {
      return CancelAnswerSchema.parse(await invoke({ action: 'cancel', orderId })).outcome;
    },
    async checkout(orderId) {
      const answer = CheckoutAnswerSchema.parse(await invoke({ action: 'clientSecret', orderId }));
      return {
        ...(answer.clientSecret ? { clientSecret: answer.clientSecret } : {}),
        ...(answer.lastError ? { lastError: answer.lastError } : {}),
      };
    },
  };
}
