import { taskHandler } from '../../shared/lambda-edge.ts';
import { paymentDeps } from './deps.ts';
import { CancelPaymentCommandSchema } from './payment.ts';
import { cancelPayment } from './payments.ts';

const cancel = cancelPayment(await paymentDeps());

/** Saga compensation: cancel the PaymentIntent, or refund it if it was paid. */
export const handler = taskHandler(CancelPaymentCommandSchema, cancel);
