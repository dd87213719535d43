import middy from '@middy/core';
import { paymentDeps } from './deps.ts';
import { CustomerPaymentRequestSchema } from './payment.ts';
import { cancelForCustomer, clientSecretFor } from './payments.ts';

const deps = await paymentDeps();
const cancel = cancelForCustomer(deps);
const clientSecret = clientSecretFor(deps);

/**
 * The payment as the order's customer acts on it, invoked by the orders service (never public):
 * cancel it (Stripe decides the race with a success), or read the client secret to confirm it with.
 */
export const handler = middy().handler(async (event: unknown) => {
  const request = CustomerPaymentRequestSchema.parse(event);
  if (request.action === 'cancel') return { outcome: await cancel(request.orderId) };
  return { clientSecret: await clientSecret(request.orderId) };
});
