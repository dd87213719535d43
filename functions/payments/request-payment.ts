import { taskHandler } from '../../shared/lambda-edge.ts';
import { paymentDeps } from './deps.ts';
import { RequestPaymentCommandSchema } from './payment.ts';
import { requestPayment } from './payments.ts';

const request = requestPayment(await paymentDeps());

/** Saga callback step (waitForTaskToken): store the token, confirm with the order's payment method; the webhook reports the outcome. */
export const handler = taskHandler(RequestPaymentCommandSchema, request);
