import middy from '@middy/core';
import { orderLogKeys } from '../../shared/logger.ts';
import { paymentDeps } from './deps.ts';
import { ResolvePaymentCommandSchema } from './payment.ts';
import { resolvePayment } from './payments.ts';

const resolve = resolvePayment(await paymentDeps());

/** Saga step after the payment wait timed out: paid at Stripe completes the order; otherwise cancel. */
export const handler = middy()
  .use(orderLogKeys())
  .handler(async (event: unknown) => resolve(ResolvePaymentCommandSchema.parse(event)));
