import { Metric } from '../../shared/metric-names.ts';
import { addCount, addDuration } from '../../shared/metrics.ts';
import type { Order } from './order.ts';

/** POST /orders placed a new order (a repeat of an Idempotency-Key places none). */
export function countOrderPlaced(): void {
  addCount(Metric.OrdersPlaced);
}

/**
 * The saga's step recorded the order's final state: completed, or compensated with its reason; and
 * how long the saga took, from the order's creation to that write (`updatedAt`), by outcome.
 */
export function countOrderFinal(order: Order): void {
  if (order.status === 'COMPLETED') addCount(Metric.OrdersCompleted);
  else addCount(Metric.OrdersCompensated, { reason: order.cancellationReason ?? 'PROCESSING_ERROR' });
  addDuration(Metric.SagaDuration, Date.parse(order.updatedAt) - Date.parse(order.createdAt), {
    outcome: order.status,
  });
}
