import type { DynamoDBRecord } from 'aws-lambda';
import { storedEventOfRecord } from '../../shared/outbox/read.ts';
import { orderedStreamRunner } from '../../shared/stream-runner.ts';
import type { OrderRepository } from './order-repository.ts';
import type { SagaStarter } from './saga-starter.ts';

export interface EnsureSagasStartedDeps {
  orders: OrderRepository;
  saga: SagaStarter;
  onError: (error: unknown, record: DynamoDBRecord) => void;
}

/**
 * The outbox's guarantee for the saga itself: every committed `order.created` starts its saga, even
 * when POST /orders could not (Step Functions unavailable, the function stopped after the write).
 * Starting is idempotent (the execution is named after the order), so the usual case, where the
 * request already started it, costs one ExecutionAlreadyExists.
 */
export const ensureSagasStarted = (deps: EnsureSagasStartedDeps) =>
  orderedStreamRunner(
    async (record) => {
      const event = storedEventOfRecord(record);
      if (event.type !== 'order.created') return;
      const order = await deps.orders.get(event.subject);
      if (!order) throw new Error(`order ${event.subject} of event ${event.id} does not exist`);
      await deps.saga.start(order);
    },
    { onError: deps.onError },
  );
