import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createEvent, parseEvent, type CloudEvent, type NewEvent } from '../../events/envelope.ts';
import { newOrder, ORDER_SOURCE, type Order } from './order.ts';
import type { IdempotencyClaim, OrderRepository } from './order-repository.ts';

/** A repository under test, and its outbox as the bridge would read it. */
export interface OrderRepositoryUnderTest {
  repo: OrderRepository;
  /** Every outbox event written for the order, in any order. */
  outbox(orderId: string): Promise<CloudEvent[]>;
}

// Near the real clock: DynamoDB Local's TTL removes items whose `expiresAt` has passed (outbox items
// expire a week after their event's time), so a fixed date in the past makes them vanish mid-test.
const NOW = new Date();
const LATER = new Date(NOW.getTime() + 5 * 60_000);

/** The order's events, decoded with their contract schema, in sequence order. */
async function eventsOf(subject: OrderRepositoryUnderTest, orderId: string) {
  const events = (await subject.outbox(orderId)).map((event) => parseEvent(event));
  return events.sort((a, b) => a.sequence.localeCompare(b.sequence));
}

const placed = (customerId = 'cust-1') =>
  newOrder({ customerId, items: [{ sku: 'SKU-1', quantity: 2 }] }, `order-${randomUUID()}`, NOW);

/** The order moved on by one saga step, with that step's event. */
function stepped(order: Order, sagaState: 'STOCK_RESERVED' | 'PAYMENT_PENDING', at = LATER) {
  const next: Order = {
    ...order,
    status: sagaState,
    sagaState,
    history: [...order.history, { sagaState, at: at.toISOString() }],
    updatedAt: at.toISOString(),
    version: order.version + 1,
  };
  const event = statusChanged(order, next, at);
  return { order: next, event };
}

function statusChanged(from: Order, to: Order, at: Date): NewEvent {
  return createEvent('order.status_changed', {
    source: ORDER_SOURCE,
    subject: from.orderId,
    time: at,
    data: {
      orderId: from.orderId,
      status: to.status,
      sagaState: to.sagaState,
      previousStatus: from.status,
      previousSagaState: from.sagaState,
    },
  });
}

const claimOf = (customerId: string, key: string, requestHash = 'hash-1'): IdempotencyClaim => ({
  key,
  customerId,
  requestHash,
});

/**
 * What every OrderRepository promises (order-repository.ts), as its users rely on it. `make` gives a
 * repository for one test; ids are unique per test, so one table may serve them all.
 */
export function describeOrderRepositoryContract(name: string, make: () => Promise<OrderRepositoryUnderTest>) {
  describe(`OrderRepository contract: ${name}`, () => {
    describe('create', () => {
      it('writes the order with eventSequence 1 and its order.created with sequence 000000000001', async () => {
        const subject = await make();
        const { order, event } = placed();
        expect(await subject.repo.create(order, event)).toEqual({ created: true });
        expect(await subject.repo.get(order.orderId)).toEqual({ ...order, eventSequence: 1 });
        expect(await eventsOf(subject, order.orderId)).toEqual([{ ...event, sequence: '000000000001' }]);
      });

      it('with a claim already taken by the same request, returns the first order and writes nothing', async () => {
        const subject = await make();
        const key = `key-${randomUUID()}`;
        const first = placed();
        const again = placed();
        expect(await subject.repo.create(first.order, first.event, claimOf('cust-1', key))).toEqual({
          created: true,
        });
        expect(await subject.repo.create(again.order, again.event, claimOf('cust-1', key))).toEqual({
          created: false,
          orderId: first.order.orderId,
          sameRequest: true,
        });
        expect(await subject.repo.get(again.order.orderId)).toBeUndefined();
        expect(await eventsOf(subject, again.order.orderId)).toEqual([]);
        expect(await eventsOf(subject, first.order.orderId)).toHaveLength(1);
      });

      it('with a claim already taken by another request, says so and writes nothing', async () => {
        const subject = await make();
        const key = `key-${randomUUID()}`;
        const first = placed();
        const other = placed();
        await subject.repo.create(first.order, first.event, claimOf('cust-1', key, 'hash-1'));
        expect(await subject.repo.create(other.order, other.event, claimOf('cust-1', key, 'hash-2'))).toEqual(
          { created: false, orderId: first.order.orderId, sameRequest: false },
        );
        expect(await subject.repo.get(other.order.orderId)).toBeUndefined();
        expect(await eventsOf(subject, other.order.orderId)).toEqual([]);
      });

      it("keeps each customer's Idempotency-Keys apart: two customers' equal keys are two keys", async () => {
        const subject = await make();
        const key = `key-${randomUUID()}`;
        const mine = placed('cust-1');
        const theirs = placed('cust-2');
        await subject.repo.create(mine.order, mine.event, claimOf('cust-1', key));
        expect(await subject.repo.create(theirs.order, theirs.event, claimOf('cust-2', key))).toEqual({
          created: true,
        });
        // And each one's repeat finds their own order.
        const repeat = placed('cust-2');
        expect(await subject.repo.create(repeat.order, repeat.event, claimOf('cust-2', key))).toEqual({
          created: false,
          orderId: theirs.order.orderId,
          sameRequest: true,
        });
      });

      it('keeps keys apart even when a `#` in the customer id could make them meet', async () => {
        const subject = await make();
        const suffix = randomUUID();
        const a = placed('cust#1');
        const b = placed('cust');
        await subject.repo.create(a.order, a.event, claimOf('cust#1', `k-${suffix}`));
        expect(await subject.repo.create(b.order, b.event, claimOf('cust', `1#k-${suffix}`))).toEqual({
          created: true,
        });
      });
    });

    describe('get', () => {
      it('returns undefined for an order never written', async () => {
        const subject = await make();
        expect(await subject.repo.get(`order-${randomUUID()}`)).toBeUndefined();
      });

      it('returns the order as last saved, with the eventSequence its events reached', async () => {
        const subject = await make();
        const { order, event } = placed();
        await subject.repo.create(order, event);
        const read = (await subject.repo.get(order.orderId))!;
        const next = stepped(read, 'STOCK_RESERVED');
        const changed: Order = { ...next.order, amount: 1200, currency: 'eur' };
        expect(await subject.repo.save(changed, [next.event])).toBe(true);
        expect(await subject.repo.get(order.orderId)).toEqual({ ...changed, eventSequence: 2 });
      });
    });

    describe('save', () => {
      it('with the next version, writes the order and gives its event the next sequence', async () => {
        const subject = await make();
        const { order, event } = placed();
        await subject.repo.create(order, event);
        const next = stepped((await subject.repo.get(order.orderId))!, 'STOCK_RESERVED');
        expect(await subject.repo.save(next.order, [next.event])).toBe(true);
        expect(await eventsOf(subject, order.orderId)).toEqual([
          { ...event, sequence: '000000000001' },
          { ...next.event, sequence: '000000000002' },
        ]);
      });

      it('gives two events of one save consecutive sequences, in the order given', async () => {
        const subject = await make();
        const { order, event } = placed();
        await subject.repo.create(order, event);
        const read = (await subject.repo.get(order.orderId))!;
        const reserved = stepped(read, 'STOCK_RESERVED');
        const pending = stepped({ ...reserved.order, version: read.version }, 'PAYMENT_PENDING');
        // The same time for both: only the sequence orders them.
        expect(await subject.repo.save(pending.order, [reserved.event, pending.event])).toBe(true);
        const events = await eventsOf(subject, order.orderId);
        expect(events.map((written) => [written.sequence, written.id])).toEqual([
          ['000000000001', event.id],
          ['000000000002', reserved.event.id],
          ['000000000003', pending.event.id],
        ]);
        expect((await subject.repo.get(order.orderId))?.eventSequence).toBe(3);
      });

      it('with a stale version, returns false and writes neither the order nor an event', async () => {
        const subject = await make();
        const { order, event } = placed();
        await subject.repo.create(order, event);
        const read = (await subject.repo.get(order.orderId))!;
        const winner = stepped(read, 'STOCK_RESERVED');
        expect(await subject.repo.save(winner.order, [winner.event])).toBe(true);
        // A second writer that read the same version.
        const loser = stepped({ ...read, cancelRequestedAt: LATER.toISOString() }, 'STOCK_RESERVED');
        expect(await subject.repo.save(loser.order, [loser.event])).toBe(false);
        expect(await subject.repo.get(order.orderId)).toEqual({ ...winner.order, eventSequence: 2 });
        expect((await eventsOf(subject, order.orderId)).map((written) => written.id)).toEqual([
          event.id,
          winner.event.id,
        ]);
      });

      it('continues the sequence across saves, and a save without events uses none', async () => {
        const subject = await make();
        const { order, event } = placed();
        await subject.repo.create(order, event);
        const reserved = stepped((await subject.repo.get(order.orderId))!, 'STOCK_RESERVED');
        expect(await subject.repo.save(reserved.order, [reserved.event])).toBe(true);
        const quiet = (await subject.repo.get(order.orderId))!;
        const cancelled = { ...quiet, cancelRequestedAt: LATER.toISOString(), version: quiet.version + 1 };
        expect(await subject.repo.save(cancelled, [])).toBe(true);
        expect((await subject.repo.get(order.orderId))?.eventSequence).toBe(2);
        const pending = stepped((await subject.repo.get(order.orderId))!, 'PAYMENT_PENDING');
        const again = statusChanged(reserved.order, pending.order, LATER);
        expect(await subject.repo.save(pending.order, [pending.event, again])).toBe(true);
        const events = await eventsOf(subject, order.orderId);
        expect(events.map((written) => [written.sequence, written.id])).toEqual([
          ['000000000001', event.id],
          ['000000000002', reserved.event.id],
          ['000000000003', pending.event.id],
          ['000000000004', again.id],
        ]);
        expect((await subject.repo.get(order.orderId))?.eventSequence).toBe(4);
      });
    });
  });
}
