/*
 * The business metrics, named once. Handlers emit them with Powertools Metrics (EMF, shared/metrics.ts),
 * the stack's dashboard and alarms read them from CloudWatch (stacks/), and the local runtime serves
 * the same EMF as Prometheus text at GET /metrics (infra/local/). A rename is one edit here.
 *
 * Every metric carries the `service` dimension Powertools adds (orders, inventory, payments, bridge);
 * the ones listed with a `dimension` are emitted twice: once without it (the total the alarms read)
 * and once with it (the breakdown the dashboards show).
 */

/**
 * Namespace of the business metrics: the stack sets POWERTOOLS_METRICS_NAMESPACE to
 * `OrderSaga/<stack name>`, so that two stages in one account never add up.
 */
export const METRICS_NAMESPACE = 'OrderSaga';

export const Metric = {
  /** orders: an order accepted by POST /orders (not a repeat of an Idempotency-Key). */
  OrdersPlaced: 'OrdersPlaced',
  /** orders: an order that reached COMPLETED. */
  OrdersCompleted: 'OrdersCompleted',
  /** orders: an order whose saga compensated (CANCELLED); breakdown by `reason` (CONTRACT §2). */
  OrdersCompensated: 'OrdersCompensated',
  /** orders: placed → final (COMPLETED or CANCELLED), in milliseconds; breakdown by `outcome`. */
  SagaDuration: 'SagaDuration',
  /** payments: the payment step's wait for the outcome (requested → settled), in milliseconds. */
  PaymentWait: 'PaymentWait',
  /** inventory: a reservation refused; breakdown by `reason` (OUT_OF_STOCK, UNKNOWN_PRODUCT). */
  StockRefusals: 'StockRefusals',
  /** bridge: events acknowledged by JetStream. */
  EventsPublished: 'EventsPublished',
  /** bridge: the event's commit (its `time`) → PubAck, in milliseconds. */
  BridgeLag: 'BridgeLag',
  /** bridge: records left for a retry (NATS unreachable, refusing, no PubAck) or unpublishable. */
  BridgeFailures: 'BridgeFailures',
  /** payments: webhook deliveries by `result` (applied, duplicate, rejected, failed, …). */
  WebhookOutcomes: 'WebhookOutcomes',
  /** payments: webhook deliveries answered 500 (Stripe retries them for up to 3 days). */
  WebhookFailures: 'WebhookFailures',
  /** payments: a charge the payment does not own (a second intent, another amount) was refunded. */
  StrayChargesRefunded: 'StrayChargesRefunded',
  /** payments: Stripe reported a refund failed (`refund.failed`). */
  RefundsFailed: 'RefundsFailed',
} as const;
export type MetricName = (typeof Metric)[keyof typeof Metric];
