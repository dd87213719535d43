import { z } from 'zod';
import { dynamoDocumentClient } from '../../shared/aws.ts';
import { NotFoundError } from '../../shared/errors.ts';
import { httpRoute } from '../../shared/http.ts';
import { ordersConfig } from './config.ts';
import { orderView } from './order.ts';
import { dynamoOrderRepository } from './order-repository.ts';

const config = ordersConfig({});
const orders = dynamoOrderRepository(dynamoDocumentClient(), config.ORDERS_TABLE_NAME);

/** GET /orders/{orderId} */
export const handler = httpRoute(
  { params: z.object({ orderId: z.string().min(1).max(64) }) },
  async ({ params, subject }) => {
    const order = await orders.get(params.orderId);
    if (!order) throw new NotFoundError('ORDER_NOT_FOUND', `Order ${params.orderId} does not exist.`);
    return { statusCode: 200, body: orderView(order, subject) };
  },
);
