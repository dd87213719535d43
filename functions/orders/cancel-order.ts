import { z } from 'zod';
import { dynamoDocumentClient } from '../../shared/aws.ts';
import { httpRoute } from '../../shared/http.ts';
import { cancelOrder } from './apply-saga-step.ts';
import { ordersConfig } from './config.ts';
import { orderView } from './order.ts';
import { dynamoOrderRepository } from './order-repository.ts';

const config = ordersConfig({});
const cancel = cancelOrder({
  orders: dynamoOrderRepository(dynamoDocumentClient(), config.ORDERS_TABLE_NAME),
  now: () => new Date(),
});

/** POST /orders/{orderId}/cancel → 202; 409 ORDER_NOT_CANCELLABLE once paid, completed or cancelled. */
export const handler = httpRoute(
  { params: z.object({ orderId: z.string().min(1).max(64) }) },
  async ({ params, subject }) => ({
    statusCode: 202,
    body: orderView(await cancel(params.orderId), subject),
  }),
);
