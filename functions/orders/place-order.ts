import { createHash } from 'node:crypto';
import { newOrder, type Order, type PlaceOrderRequest } from './order.ts';
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
export function requestHash(request: PlaceOrderRequest): string {
  const canonical = {
    customerId: request.customerId,
    items: request.items.map(({ sku, quantity }) => [sku, quantity]),
    paymentMethodId: request.paymentMethodId ?? null,
    currency: request.currency ?? null,
  };
  return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
}

export type PlaceOrderOutcome =
  | { outcome: 'PLACED'; order: Order }
  /** The Idempotency-Key's first request: its order, whose saga is made sure to run. */
  | { outcome: 'REPEATED'; order: Order }
  /** The customer used the Idempotency-Key with another request: nothing placed. */
  | { outcome: 'KEY_REUSED' };

/**
 * Records the order with its `order.created` event, then starts its saga. If starting fails, the
 * order is still accepted: its committed `order.created` starts the saga from the table's stream.
 * An Idempotency-Key belongs to the order's customer: a repeat of the same request returns the first
 * order (and makes sure its saga runs); the same key with another request is refused; another
 * customer's use of the same key is theirs alone.
 */
export const placeOrder =
  (deps: PlaceOrderDeps) =>
  async (request: PlaceOrderRequest, idempotencyKey?: string): Promise<PlaceOrderOutcome> => {
    const { order, event } = newOrder(request, deps.newOrderId(), deps.now());
    const claim = idempotencyKey
      ? { key: idempotencyKey, customerId: request.customerId, requestHash: requestHash(request) }
      : undefined;
    const result = await deps.orders.create(order, event, claim);
    if (result.created) {
      await start(deps, order);
      return { outcome: 'PLACED', order };
    }
    if (!result.sameRequest) return { outcome: 'KEY_REUSED' };
    const existing = await deps.orders.get(result.orderId);
    if (!existing) throw new Error(`idempotency record points at missing order ${result.orderId}`);
    await start(deps, existing);
    return { outcome: 'REPEATED', order: existing };
  };

async function start(deps: PlaceOrderDeps, order: Order): Promise<void> {
  try {
    await deps.saga.start(order);
  } catch (error) {
    deps.onStartDeferred(order.orderId, error);
  }
}
