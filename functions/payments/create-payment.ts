import { taskHandler } from '../../shared/lambda-edge.ts';
import { paymentDeps } from './deps.ts';
import { CreatePaymentCommandSchema } from './payment.ts';
import { createPayment } from './payments.ts';

const create = createPayment(await paymentDeps());

/** Saga step: create the payment and its PaymentIntent; answers the intent and its client secret. */
export const handler = taskHandler(CreatePaymentCommandSchema, create);
