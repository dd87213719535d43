import { createHash } from 'node:crypto';
import { ConflictError } from '../../shared/errors.ts';
import { newOrder, type CreateOrderRequest, type Order } from './order.ts';
import type { OrderRepository } from './order-repository.ts';
import type { SagaStarter } from './saga-starter.ts';

export interface PlaceOrderDeps {
  orders: OrderRepository;
  saga: SagaStarter;
  newOrderId: () => string;
  now: () => Date;
  /** Starting the saga failed here; the outbox starts it (ensure-sagas-started.ts), so this is only reported. */
  onStartDeferred: (orderId: string, error: unknown) => void;
}

/** The canonical form of a request, so that key order and whitespace do not change its identity. */
export function requestHash(request: CreateOrderRequest): string {
  const canonical = {
    customerId: request.customerId,
    items: request.items.map(({ sku, quantity }) => [sku, quantity]),
    paymentMethodId: request.paymentMethodId ?? null,
    currency: request.currency ?? null,
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

/**
 * Records the order with its `order.created` event, then starts its saga. If starting fails, the
 * order is still accepted: its committed `order.created` starts the saga from the table's stream.
 * With an Idempotency-Key, a repeat of the same request returns the first order (and makes sure its
 * saga runs); the same key with another request is a conflict.
 */
export const placeOrder =
  (deps: PlaceOrderDeps) =>
  async (request: CreateOrderRequest, idempotencyKey?: string): Promise<Order> => {
    const { order, event } = newOrder(request, deps.newOrderId(), deps.now());
    const claim = idempotencyKey ? { key: idempotencyKey, requestHash: requestHash(request) } : undefined;
    const result = await deps.orders.create(order, event, claim);
    if (result.created) {
      await start(deps, order);
      return order;
    }
    if (!result.sameRequest) {
      throw new ConflictError(
        'IDEMPOTENCY_KEY_REUSED',
        'This Idempotency-Key was already used with a different request body.',
      );
    }
    const existing = await deps.orders.get(result.orderId);
    if (!existing) throw new Error(`idempotency record points at missing order ${result.orderId}`);
    await start(deps, existing);
    return existing;
  };

async function start(deps: PlaceOrderDeps, order: Order): Promise<void> {
  try {
    await deps.saga.start(order);
  } catch (error) {
    deps.onStartDeferred(order.orderId, error);
  }
}
