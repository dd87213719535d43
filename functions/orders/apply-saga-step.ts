import { applySagaStep, type Order, type SagaStep } from './order.ts';
import type { OrderRepository } from './order-repository.ts';

export interface ApplySagaStepDeps {
  orders: OrderRepository;
  now: () => Date;
}

export class OrderNotFoundError extends Error {
  constructor(orderId: string) {
    super(`Order ${orderId} does not exist`);
    this.name = 'OrderNotFoundError';
  }
}

const MAX_ATTEMPTS = 5;

/** Moves an order one saga step forward, retrying when a concurrent writer got there first. */
export const applyStep =
  (deps: ApplySagaStepDeps) =>
  async (command: SagaStep): Promise<Order> => {
    for (let attempt = 1; ; attempt++) {
      const order = await deps.orders.get(command.orderId);
      if (!order) throw new OrderNotFoundError(command.orderId);
      const outcome = applySagaStep(order, command, deps.now());
      if (!outcome.changed) return outcome.order;
      if (await deps.orders.save(outcome.order, outcome.events)) return outcome.order;
      if (attempt >= MAX_ATTEMPTS)
        throw new Error(`Order ${command.orderId} kept changing under step ${command.step}`);
    }
  };
