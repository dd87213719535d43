import type { Caller } from '../../shared/caller.ts';
import { ConcurrentChangeError } from '../../shared/saga.ts';
import {
  applySagaStep,
  isVisibleTo,
  recordHonouredCancellation,
  requestCancellation,
  type NotCancellable,
  type Order,
  type SagaStep,
  type StepOutcome,
} from './order.ts';
import type { OrderPayments } from './order-payments.ts';
import type { OrderRepository } from './order-repository.ts';

export interface ApplySagaStepDeps {
  orders: OrderRepository;
  now: () => Date;
  /**
   * A step's own write took the order to its final state (COMPLETED, CANCELLED); not called when a
   * repeated step finds it there already. For the business metrics.
   */
  onFinal?: (order: Order) => void;
}

export class OrderNotFoundError extends Error {
  constructor(orderId: string, options?: ErrorOptions) {
    super(`Order ${orderId} does not exist`, options);
    this.name = 'OrderNotFoundError';
  }
}

const MAX_ATTEMPTS = 5;

/**
 * Reads the order, applies `change` and saves it with its events, conditional on the version it
 * read; when a concurrent writer got there first, it starts over from the fresh order. A change may
 * refuse instead (a value without `changed`), which is returned as it is. `saved` hears of the
 * write, when there was one.
 */
async function changeOrder<Refusal extends object = never>(
  deps: ApplySagaStepDeps,
  orderId: string,
  change: (order: Order, now: Date) => StepOutcome | Refusal,
  missing: () => Error,
  saved?: (order: Order) => void,
): Promise<Order | Refusal> {
  for (let attempt = 1; ; attempt++) {
    const order = await deps.orders.get(orderId);
    if (!order) throw missing();
    const outcome = change(order, deps.now());
    if (!('changed' in outcome)) return outcome;
    if (!outcome.changed) return outcome.order;
    if (await deps.orders.save(outcome.order, outcome.events)) {
      saved?.(outcome.order);
      return outcome.order;
    }
    if (attempt >= MAX_ATTEMPTS) throw new ConcurrentChangeError(`Order ${orderId} kept changing under us`);
  }
}

/** Moves an order one saga step forward. */
export const applyStep =
  (deps: ApplySagaStepDeps) =>
  (command: SagaStep): Promise<Order> =>
    changeOrder<never>(
      deps,
      command.orderId,
      (order, now) => applySagaStep(order, command, now),
      () => new OrderNotFoundError(command.orderId),
      (order) => {
        if (order.sagaState === 'COMPLETED' || order.sagaState === 'COMPENSATED') deps.onFinal?.(order);
      },
    );

export type CancelOutcome =
  | { outcome: 'CANCELLING'; order: Order }
  | NotCancellable
  /** No such order, or not the caller's: the two are not told apart. */
  | { outcome: 'NOT_FOUND' };

/**
 * The customer's cancellation (POST /orders/{orderId}/cancel). Before the payment exists the order
 * records it and the saga refuses its next step. Once the saga waits for the payment, the payments
 * service cancels the PaymentIntent at Stripe first, which decides the race with a success: the
 * waiting step then hears CUSTOMER_CANCELLED within seconds and compensates; a payment that won is
 * refused (NOT_CANCELLABLE) and the order completes.
 */
export const cancelOrder =
  (deps: ApplySagaStepDeps & { payments: OrderPayments }) =>
  async (orderId: string, caller: Caller): Promise<CancelOutcome> => {
    const order = await deps.orders.get(orderId);
    if (!order || !isVisibleTo(order, caller)) return { outcome: 'NOT_FOUND' };
    let honoured = false;
    if (order.sagaState === 'PAYMENT_PENDING' && !order.cancelRequestedAt && !order.paidAt) {
      const atStripe = await deps.payments.cancelForCustomer(orderId);
      if (atStripe === 'paid') {
        return {
          outcome: 'NOT_CANCELLABLE',
          message: `Order ${orderId} is paid and can no longer be cancelled.`,
        };
      }
      // The saga hears of it at once and may compensate before this records it: recorded anyway.
      honoured = atStripe === 'canceled';
    }
    const changed = await changeOrder(
      deps,
      orderId,
      honoured ? recordHonouredCancellation : requestCancellation,
      () => new OrderNotFoundError(orderId),
    );
    return 'outcome' in changed ? changed : { outcome: 'CANCELLING', order: changed };
  };
