import { z } from 'zod';
import { dynamoDocumentClient, lambdaClient } from '../../shared/aws.ts';
import { ClientError } from '../../shared/errors.ts';
import { httpRoute } from '../../shared/http.ts';
import { ordersConfig } from './config.ts';
import { isVisibleTo, orderView } from './order.ts';
import { lambdaOrderPayments } from './order-payments.ts';
import { dynamoOrderRepository } from './order-repository.ts';

const config = ordersConfig({ PAYMENTS_FUNCTION_NAME: z.string().min(1) });
const orders = dynamoOrderRepository(dynamoDocumentClient(), config.ORDERS_TABLE_NAME);
const payments = lambdaOrderPayments(lambdaClient(), config.PAYMENTS_FUNCTION_NAME);

/** GET /orders/{orderId}; another customer's order is 404, exactly as an unknown one. */
export const handler = httpRoute(
  { params: z.object({ orderId: z.string().min(1).max(64) }) },
  async ({ params, caller }) => {
    const order = await orders.get(params.orderId);
    if (!order || !isVisibleTo(order, caller))
      throw new ClientError('ORDER_NOT_FOUND', `Order ${params.orderId} does not exist.`);
    // The client secret and the last declined attempt live with the payment only (never in the
    // saga's state): asked for while the customer may still confirm.
    const open = order.sagaState === 'PAYMENT_PENDING' && order.payment && !order.cancelRequestedAt;
    const checkout = open ? await payments.checkout(order.orderId) : {};
    return { statusCode: 200, body: orderView(order, caller, checkout) };
  },
);
