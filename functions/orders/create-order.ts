import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { dynamoDocumentClient, stepFunctionsClient } from '../../shared/aws.ts';
import { ClientError, ValidationError } from '../../shared/errors.ts';
import { httpRoute, idempotencyKeyOf } from '../../shared/http.ts';
import { logger } from '../../shared/logger.ts';
import { ordersConfig } from './config.ts';
import { CreateOrderRequestSchema, customerOf, orderView } from './order.ts';
import { countOrderPlaced } from './order-metrics.ts';
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

/** POST /orders → 202 with the order; its saga runs in the background. */
export const handler = httpRoute({ body: CreateOrderRequestSchema }, async ({ body, headers, caller }) => {
  const key = idempotencyKeyOf(headers);
  const customer = customerOf(body, caller);
  if ('refused' in customer) {
    if (customer.refused === 'CUSTOMER_REQUIRED') {
      throw new ValidationError('The request body is invalid.', [
        { path: 'customerId', message: 'Required: name the customer the order is for' },
      ]);
    }
    throw new ClientError(
      'CUSTOMER_MISMATCH',
      'An order can only be placed for the customer the token names.',
    );
  }
  const placed = await place({ ...body, customerId: customer.customerId }, key);
  if (placed.outcome === 'KEY_REUSED') {
    throw new ClientError(
      'IDEMPOTENCY_KEY_REUSED',
      'This Idempotency-Key was already used with a different request body.',
    );
  }
  if (placed.outcome === 'PLACED') countOrderPlaced();
  return {
    statusCode: 202,
    body: orderView(placed.order, caller),
    headers: { location: `/orders/${placed.order.orderId}` },
  };
});
