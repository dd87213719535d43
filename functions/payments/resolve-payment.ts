import { taskHandler } from '../../shared/lambda-edge.ts';
import { paymentDeps } from './deps.ts';
import { ResolvePaymentCommandSchema } from './payment.ts';
import { resolvePayment } from './payments.ts';

const resolve = resolvePayment(await paymentDeps());

/** Saga step after the payment wait timed out: paid at Stripe completes the order; otherwise cancel. */
export const handler = taskHandler(ResolvePaymentCommandSchema, resolve);
