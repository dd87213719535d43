import { z } from 'zod';
import { dynamoDocumentClient, lambdaClient } from '../../shared/aws.ts';
import { NotFoundError } from '../../shared/errors.ts';
import { httpRoute } from '../../shared/http.ts';
import { ordersConfig } from './config.ts';
import { orderView, showsClientSecret } from './order.ts';
import { lambdaOrderPayments } from './order-payments.ts';
import { dynamoOrderRepository } from './order-repository.ts';

const config = ordersConfig({ PAYMENTS_FUNCTION_NAME: z.string().min(1) });
const orders = dynamoOrderRepository(dynamoDocumentClient(), config.ORDERS_TABLE_NAME);
const payments = lambdaOrderPayments(lambdaClient(), config.PAYMENTS_FUNCTION_NAME);

/** GET /orders/{orderId} */
export const handler = httpRoute(
  { params: z.object({ orderId: z.string().min(1).max(64) }) },
  async ({ params, subject }) => {
    const order = await orders.get(params.orderId);
    if (!order) throw new NotFoundError('ORDER_NOT_FOUND', `Order ${params.orderId} does not exist.`);
    // The client secret lives with the payment only (never in the saga's state): asked for while
    // the customer may still confirm.
    const wantsSecret =
      order.sagaState === 'PAYMENT_PENDING' &&
      order.payment &&
      !order.payment.clientSecret &&
      showsClientSecret(order, subject);
    const secret = wantsSecret ? await payments.clientSecret(order.orderId) : undefined;
    return { statusCode: 200, body: orderView(order, subject, secret) };
  },
);
