import { dynamoDocumentClient } from '../../shared/aws.ts';
import { taskHandler } from '../../shared/lambda-edge.ts';
import { applyStep } from './apply-saga-step.ts';
import { ordersConfig } from './config.ts';
import { SagaStepSchema } from './order.ts';
import { countOrderFinal } from './order-metrics.ts';
import { dynamoOrderRepository } from './order-repository.ts';

const config = ordersConfig({});
const apply = applyStep({
  orders: dynamoOrderRepository(dynamoDocumentClient(), config.ORDERS_TABLE_NAME),
  now: () => new Date(),
  onFinal: countOrderFinal,
});

/** Saga task: moves the order one step (reserved, payment pending, completed, compensating, cancelled). */
export const handler = taskHandler(SagaStepSchema, async (command) => {
  const order = await apply(command);
  return {
    orderId: order.orderId,
    status: order.status,
    sagaState: order.sagaState,
    // Always present (null without one): the saga reads it with a JSONPath, which fails on a missing key.
    cancellationReason: order.cancellationReason ?? null,
  };
});
