import type { CloudEvent, NewEvent } from '../../events/envelope.ts';
import { sequenceEvents } from '../../shared/outbox/write.ts';
import type { Order } from './order.ts';
import type { CreateResult, IdempotencyClaim, OrderRepository } from './order-repository.ts';

/**
 * OrderRepository in memory, for domain tests: order, outbox and idempotency claim commit together
 * or not at all. order-repository.contract.ts holds it to what dynamoOrderRepository does.
 */
export class InMemoryOrders implements OrderRepository {
  readonly orders = new Map<string, Order>();
  readonly outbox: CloudEvent[] = [];
  readonly claims = new Map<string, { orderId: string; requestHash: string }>();

  async get(orderId: string) {
    const order = this.orders.get(orderId);
    return order ? structuredClone(order) : undefined;
  }

  async create(order: Order, event: NewEvent, claim?: IdempotencyClaim): Promise<CreateResult> {
    if (this.orders.has(order.orderId)) throw new Error(`order ${order.orderId} already exists`);
    const claimKey = claim && JSON.stringify([claim.customerId, claim.key]);
    const previous = claimKey ? this.claims.get(claimKey) : undefined;
    if (claim && previous) {
      return {
        created: false,
        orderId: previous.orderId,
        sameRequest: previous.requestHash === claim.requestHash,
      };
    }
    this.orders.set(order.orderId, structuredClone({ ...order, eventSequence: 1 }));
    this.outbox.push(...sequenceEvents([event], 0));
    if (claim && claimKey)
      this.claims.set(claimKey, { orderId: order.orderId, requestHash: claim.requestHash });
    return { created: true };
  }

  async save(order: Order, events: NewEvent[]) {
    const stored = this.orders.get(order.orderId);
    if (!stored || stored.version !== order.version - 1) return false;
    // As the real one: the order's own count, which the version check makes the stored one.
    const last = order.eventSequence ?? 0;
    this.orders.set(order.orderId, structuredClone({ ...order, eventSequence: last + events.length }));
    this.outbox.push(...sequenceEvents(events, last));
    return true;
  }
}
