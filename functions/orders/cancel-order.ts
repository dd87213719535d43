import { z } from 'zod';
import { dynamoDocumentClient, lambdaClient } from '../../shared/aws.ts';
import { ClientError } from '../../shared/errors.ts';
import { httpRoute } from '../../shared/http.ts';
import { cancelOrder } from './apply-saga-step.ts';
import { ordersConfig } from './config.ts';
import { orderView } from './order.ts';
import { lambdaOrderPayments } from './order-payments.ts';
import { dynamoOrderRepository } from './order-repository.ts';

const config = ordersConfig({ PAYMENTS_FUNCTION_NAME: z.string().min(1) });
const cancel = cancelOrder({
  orders: dynamoOrderRepository(dynamoDocumentClient(), config.ORDERS_TABLE_NAME),
  payments: lambdaOrderPayments(lambdaClient(), config.PAYMENTS_FUNCTION_NAME),
  now: () => new Date(),
});

/**
 * POST /orders/{orderId}/cancel → 202; 409 ORDER_NOT_CANCELLABLE once paid, completed or cancelled;
 * 404 for an order that is not the caller's, as for one that does not exist.
 * During the payment wait the PaymentIntent is canceled at Stripe at once (functions/payments).
 */
export const handler = httpRoute(
  { params: z.object({ orderId: z.string().min(1).max(64) }) },
  async ({ params, caller }) => {
    const result = await cancel(params.orderId, caller);
    if (result.outcome === 'NOT_FOUND')
      throw new ClientError('ORDER_NOT_FOUND', `Order ${params.orderId} does not exist.`);
    if (result.outcome === 'NOT_CANCELLABLE') throw new ClientError('ORDER_NOT_CANCELLABLE', result.message);
    return { statusCode: 202, body: orderView(result.order, caller) };
  },
);
