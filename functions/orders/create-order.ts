import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { dynamoDocumentClient, stepFunctionsClient } from '../../shared/aws.ts';
import { ValidationError } from '../../shared/errors.ts';
import { httpRoute } from '../../shared/http.ts';
import { logger } from '../../shared/logger.ts';
import { ordersConfig } from './config.ts';
import { CreateOrderRequestSchema, orderView } from './order.ts';
import { dynamoOrderRepository } from './order-repository.ts';
import { placeOrder } from './place-order.ts';
import { stepFunctionsSagaStarter } from './saga-starter.ts';

const config = ordersConfig({ STATE_MACHINE_ARN: z.string().startsWith('arn:') });
const place = placeOrder({
  orders: dynamoOrderRepository(dynamoDocumentClient(), config.ORDERS_TABLE_NAME),
  saga: stepFunctionsSagaStarter(stepFunctionsClient(), config.STATE_MACHINE_ARN),
  newOrderId: randomUUID,
  now: () => new Date(),
  onStartDeferred: (orderId, error) =>
    logger.warn('saga not started by the request; the outbox will start it', { orderId, error }),
});

const IdempotencyKeySchema = z.string().min(1).max(255).optional();

/** POST /orders → 202 with the order; its saga runs in the background. */
export const handler = httpRoute({ body: CreateOrderRequestSchema }, async ({ body, headers, subject }) => {
  const key = IdempotencyKeySchema.safeParse(headers['idempotency-key']);
  if (!key.success) {
    throw new ValidationError('The Idempotency-Key header must be 1-255 characters.', [
      { path: 'Idempotency-Key', message: 'must be 1-255 characters' },
    ]);
  }
  const order = await place(body, key.data);
  return {
    statusCode: 202,
    body: orderView(order, subject),
    headers: { location: `/orders/${order.orderId}` },
  };
});
