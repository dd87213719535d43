import { taskHandler } from '../../shared/lambda-edge.ts';
import { paymentDeps } from './deps.ts';
import { CustomerPaymentRequestSchema, type CheckoutView } from './payment.ts';
import { cancelForCustomer, checkoutFor, type CustomerCancelOutcome } from './payments.ts';

const deps = await paymentDeps();
const cancel = cancelForCustomer(deps);
const checkout = checkoutFor(deps);

/**
 * The payment as the order's customer acts on it, invoked by the orders service (never public):
 * cancel it (Stripe decides the race with a success), or read what the customer needs to confirm
 * it: the client secret, and the decline of their last attempt (`clientSecret`: a CheckoutView).
 */
export const handler = taskHandler(
  CustomerPaymentRequestSchema,
  async (request): Promise<{ outcome: CustomerCancelOutcome } | CheckoutView> => {
    if (request.action === 'cancel') return { outcome: await cancel(request.orderId) };
    return checkout(request.orderId);
  },
);
