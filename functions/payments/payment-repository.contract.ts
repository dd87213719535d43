import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createEvent, parseEvent, type CloudEvent, type NewEvent } from '../../events/envelope.ts';
import { ALLOWED_FROM, PAYMENT_SOURCE, type PaymentStatus } from './payment.ts';
import type { BeginPayment, PaymentRepository } from './payment-repository.ts';

/** A repository under test, its outbox as the bridge would read it, and a second handle on its store. */
export interface PaymentRepositoryUnderTest {
  repo: PaymentRepository;
  /** Every outbox event written for the order's payment, in any order. */
  outbox(orderId: string): Promise<CloudEvent[]>;
  /** Another repository on the same store, as another Lambda instance holds one. */
  another(): PaymentRepository;
}

// Near the real clock: DynamoDB Local's TTL removes items whose `expiresAt` has passed (outbox items
// expire a week after their event's time), so a fixed date in the past makes them vanish mid-test.
const NOW = new Date();
const LATER = new Date(NOW.getTime() + 5 * 60_000);
const LATEST = new Date(NOW.getTime() + 10 * 60_000);
const STATUSES: readonly PaymentStatus[] = [
  'CREATING',
  'INITIATED',
  'SUCCEEDED',
  'FAILED',
  'CANCELLED',
  'REFUNDED',
];

const unique = (prefix: string) => `${prefix}${randomUUID()}`;
const beginning = (overrides: Partial<BeginPayment> = {}): BeginPayment => ({
  orderId: unique('order-'),
  amount: 2500,
  currency: 'usd',
  ...overrides,
});

/** The event a move to `to` reports. */
function eventFor(orderId: string, to: PaymentStatus, at = LATER): NewEvent {
  const base = { source: PAYMENT_SOURCE, subject: orderId, time: at };
  const payment = { orderId, paymentIntentId: `pi_${orderId}`, amount: 2500, currency: 'usd' };
  switch (to) {
    case 'CREATING':
    case 'INITIATED':
      return createEvent('payment.initiated', { ...base, data: { ...payment, status: 'requires_action' } });
    case 'SUCCEEDED':
      return createEvent('payment.succeeded', { ...base, data: payment });
    case 'FAILED':
      return createEvent('payment.failed', { ...base, data: { ...payment, reason: 'card_declined' } });
    case 'CANCELLED':
      return createEvent('payment.cancelled', { ...base, data: { ...payment, reason: 'abandoned' } });
    case 'REFUNDED':
      return createEvent('payment.refunded', {
        ...base,
        data: { ...payment, reason: 'late success', refundId: 're_1' },
      });
  }
}

/** How a payment gets to each status from CREATING, by moves without events. */
const PATH: Record<PaymentStatus, readonly PaymentStatus[]> = {
  CREATING: [],
  INITIATED: ['INITIATED'],
  SUCCEEDED: ['SUCCEEDED'],
  FAILED: ['FAILED'],
  CANCELLED: ['CANCELLED'],
  REFUNDED: ['SUCCEEDED', 'REFUNDED'],
};

/** A payment begun and moved to `status` without events: its outbox is empty. */
async function paymentIn(
  repo: PaymentRepository,
  status: PaymentStatus,
  overrides: Partial<BeginPayment> = {},
) {
  const command = beginning(overrides);
  await repo.begin(command, NOW);
  for (const to of PATH[status]) {
    const moved = await repo.transition(command.orderId, to, {}, undefined, NOW);
    if (moved !== 'applied') throw new Error(`setting up: ${to} was ${moved}`);
  }
  return (await repo.get(command.orderId))!;
}

/** The payment's events, decoded with their contract schema, in sequence order. */
async function eventsOf(subject: PaymentRepositoryUnderTest, orderId: string) {
  const events = (await subject.outbox(orderId)).map((event) => parseEvent(event));
  return events.sort((a, b) => a.sequence.localeCompare(b.sequence));
}

const sequencesOf = async (subject: PaymentRepositoryUnderTest, orderId: string) =>
  (await eventsOf(subject, orderId)).map((event) => [event.sequence, event.id]);

const lastError = { code: 'card_declined', declineCode: 'insufficient_funds', message: 'Declined.' };

/**
 * What every PaymentRepository promises (payment-repository.ts), as its users rely on it. `make`
 * gives a repository for one test; ids are unique per test, so one table may serve them all.
 */
export function describePaymentRepositoryContract(
  name: string,
  make: () => Promise<PaymentRepositoryUnderTest>,
) {
  describe(`PaymentRepository contract: ${name}`, () => {
    describe('begin', () => {
      it('creates the payment in CREATING with its task token and confirmedBy, and returns it as stored', async () => {
        const { repo, ...subject } = await make();
        const command = beginning({ taskToken: 'token-1', confirmedBy: 'server' });
        const begun = await repo.begin(command, NOW);
        expect(begun).toEqual({
          orderId: command.orderId,
          amount: 2500,
          currency: 'usd',
          status: 'CREATING',
          taskToken: 'token-1',
          confirmedBy: 'server',
          createdAt: NOW.toISOString(),
          updatedAt: NOW.toISOString(),
        });
        expect(await repo.get(command.orderId)).toEqual(begun);
        expect(await subject.outbox(command.orderId)).toEqual([]);
      });

      it('returns the existing payment afterwards: amount and currency stay those of the first call', async () => {
        const { repo } = await make();
        const command = beginning();
        await repo.begin(command, NOW);
        const again = await repo.begin(
          { ...command, amount: 9999, currency: 'eur', taskToken: 'token-2', confirmedBy: 'browser' },
          LATER,
        );
        expect(again).toEqual({
          orderId: command.orderId,
          amount: 2500,
          currency: 'usd',
          status: 'CREATING',
          taskToken: 'token-2',
          confirmedBy: 'browser',
          createdAt: NOW.toISOString(),
          updatedAt: LATER.toISOString(),
        });
        expect(await repo.get(command.orderId)).toEqual(again);
      });

      it('never moves the status back, and keeps the task token when given none', async () => {
        const { repo } = await make();
        const moved = await paymentIn(repo, 'INITIATED', { taskToken: 'token-1' });
        const again = await repo.begin(beginning({ orderId: moved.orderId }), LATER);
        expect(again).toEqual({ ...moved, updatedAt: LATER.toISOString() });
      });
    });

    describe('transition', () => {
      const moves = STATUSES.flatMap((from) =>
        STATUSES.filter((to) => to !== 'CREATING').map((to) => ({
          from,
          to,
          allowed: ALLOWED_FROM[to].includes(from),
        })),
      );
      // Thirty payments of their own: run side by side (the context's expect, as concurrent tests need).
      it.concurrent.for(moves)(
        '$from → $to: applied only if ALLOWED_FROM permits it ($allowed)',
        async ({ from, to, allowed }, { expect }) => {
          const subject = await make();
          const before = await paymentIn(subject.repo, from);
          const event = eventFor(before.orderId, to);
          const result = await subject.repo.transition(
            before.orderId,
            to,
            { stripeStatus: 'x' },
            event,
            LATER,
          );
          expect(result).toBe(allowed ? 'applied' : 'stale');
          expect(await subject.repo.get(before.orderId)).toEqual(
            allowed ? { ...before, status: to, stripeStatus: 'x', updatedAt: LATER.toISOString() } : before,
          );
          expect(await eventsOf(subject, before.orderId)).toEqual(
            allowed ? [{ ...event, sequence: '000000000001' }] : [],
          );
        },
      );

      it('gives each event the next sequence of the payment', async () => {
        const subject = await make();
        const { orderId } = await paymentIn(subject.repo, 'CREATING');
        const events = (['INITIATED', 'SUCCEEDED', 'REFUNDED'] as const).map((to) => eventFor(orderId, to));
        for (const [index, to] of (['INITIATED', 'SUCCEEDED', 'REFUNDED'] as const).entries())
          expect(await subject.repo.transition(orderId, to, {}, events[index], LATER)).toBe('applied');
        expect(await sequencesOf(subject, orderId)).toEqual(
          events.map((event, index) => [`00000000000${index + 1}`, event.id]),
        );
      });

      it('without an event, moves the status, writes no outbox item and uses no sequence', async () => {
        const subject = await make();
        const { orderId } = await paymentIn(subject.repo, 'CREATING');
        expect(await subject.repo.transition(orderId, 'INITIATED', {}, undefined, LATER)).toBe('applied');
        expect((await subject.repo.get(orderId))?.status).toBe('INITIATED');
        expect(await subject.outbox(orderId)).toEqual([]);
        const succeeded = eventFor(orderId, 'SUCCEEDED');
        expect(await subject.repo.transition(orderId, 'SUCCEEDED', {}, succeeded, LATER)).toBe('applied');
        expect(await sequencesOf(subject, orderId)).toEqual([['000000000001', succeeded.id]]);
      });

      it('is stale for a payment never begun, and writes nothing', async () => {
        const subject = await make();
        const orderId = unique('order-');
        const event = eventFor(orderId, 'INITIATED');
        const stripeEventId = unique('evt_');
        expect(await subject.repo.transition(orderId, 'INITIATED', {}, event, LATER, stripeEventId)).toBe(
          'stale',
        );
        expect(await subject.repo.get(orderId)).toBeUndefined();
        expect(await subject.outbox(orderId)).toEqual([]);
        expect(await subject.repo.recordStripeEvent(stripeEventId, LATER)).toBe(true);
      });

      it('when stale, records neither its change, its event nor its Stripe event', async () => {
        const subject = await make();
        const before = await paymentIn(subject.repo, 'SUCCEEDED');
        const stripeEventId = unique('evt_');
        const failed = eventFor(before.orderId, 'FAILED');
        expect(
          await subject.repo.transition(
            before.orderId,
            'FAILED',
            { failureCode: 'x' },
            failed,
            LATER,
            stripeEventId,
          ),
        ).toBe('stale');
        expect(await subject.repo.get(before.orderId)).toEqual(before);
        expect(await subject.outbox(before.orderId)).toEqual([]);
        expect(await subject.repo.recordStripeEvent(stripeEventId, LATER)).toBe(true);
      });

      it('applies a Stripe event once: the same stripeEventId again is a duplicate, with no second event', async () => {
        const subject = await make();
        const { orderId } = await paymentIn(subject.repo, 'CREATING');
        const stripeEventId = unique('evt_');
        const initiated = eventFor(orderId, 'INITIATED');
        expect(await subject.repo.transition(orderId, 'INITIATED', {}, initiated, LATER, stripeEventId)).toBe(
          'applied',
        );
        const after = await subject.repo.get(orderId);
        // A move that would apply, but for the Stripe event already applied.
        const succeeded = eventFor(orderId, 'SUCCEEDED', LATEST);
        expect(
          await subject.repo.transition(orderId, 'SUCCEEDED', {}, succeeded, LATEST, stripeEventId),
        ).toBe('duplicate');
        expect(await subject.repo.get(orderId)).toEqual(after);
        expect(await sequencesOf(subject, orderId)).toEqual([['000000000001', initiated.id]]);
      });

      it('reports a repeated Stripe event as a duplicate even when its move no longer applies', async () => {
        const subject = await make();
        const { orderId } = await paymentIn(subject.repo, 'CREATING');
        const stripeEventId = unique('evt_');
        const succeeded = eventFor(orderId, 'SUCCEEDED');
        await subject.repo.transition(orderId, 'SUCCEEDED', {}, succeeded, LATER, stripeEventId);
        expect(await subject.repo.transition(orderId, 'SUCCEEDED', {}, succeeded, LATER, stripeEventId)).toBe(
          'duplicate',
        );
        expect(await subject.outbox(orderId)).toHaveLength(1);
      });

      it('with `from`, moves only from those statuses', async () => {
        const subject = await make();
        const { orderId } = await paymentIn(subject.repo, 'INITIATED');
        const event = eventFor(orderId, 'CANCELLED');
        expect(
          await subject.repo.transition(orderId, 'CANCELLED', {}, event, LATER, undefined, ['CREATING']),
        ).toBe('stale');
        expect(await subject.outbox(orderId)).toEqual([]);
        expect(
          await subject.repo.transition(orderId, 'CANCELLED', {}, event, LATER, undefined, [
            'CREATING',
            'INITIATED',
          ]),
        ).toBe('applied');
        expect(await sequencesOf(subject, orderId)).toEqual([['000000000001', event.id]]);
      });

      it('with `from`, never moves from a status ALLOWED_FROM does not permit', async () => {
        const subject = await make();
        const before = await paymentIn(subject.repo, 'SUCCEEDED');
        const event = eventFor(before.orderId, 'FAILED');
        expect(
          await subject.repo.transition(before.orderId, 'FAILED', {}, event, LATER, undefined, [
            'SUCCEEDED',
            'INITIATED',
          ]),
        ).toBe('stale');
        expect(await subject.repo.get(before.orderId)).toEqual(before);
        expect(await subject.outbox(before.orderId)).toEqual([]);
      });

      it('with `from` naming only statuses ALLOWED_FROM does not permit, is stale', async () => {
        const subject = await make();
        const before = await paymentIn(subject.repo, 'SUCCEEDED');
        const event = eventFor(before.orderId, 'FAILED');
        expect(
          await subject.repo.transition(before.orderId, 'FAILED', {}, event, LATER, undefined, ['SUCCEEDED']),
        ).toBe('stale');
        expect(await subject.repo.get(before.orderId)).toEqual(before);
      });

      it('with `paymentIntentId`, applies while no intent is recorded or this one is, never for another', async () => {
        const subject = await make();
        const { orderId } = await paymentIn(subject.repo, 'CREATING');
        const [mine, other] = [unique('pi_'), unique('pi_')];
        const initiated = eventFor(orderId, 'INITIATED');
        expect(
          await subject.repo.transition(
            orderId,
            'INITIATED',
            { paymentIntentId: mine },
            initiated,
            LATER,
            undefined,
            undefined,
            mine,
          ),
        ).toBe('applied');
        const before = await subject.repo.get(orderId);
        const failed = eventFor(orderId, 'FAILED');
        expect(
          await subject.repo.transition(
            orderId,
            'FAILED',
            {},
            failed,
            LATER,
            unique('evt_'),
            undefined,
            other,
          ),
        ).toBe('stale');
        expect(await subject.repo.get(orderId)).toEqual(before);
        const succeeded = eventFor(orderId, 'SUCCEEDED');
        expect(
          await subject.repo.transition(
            orderId,
            'SUCCEEDED',
            {},
            succeeded,
            LATER,
            undefined,
            undefined,
            mine,
          ),
        ).toBe('applied');
        expect(await sequencesOf(subject, orderId)).toEqual([
          ['000000000001', initiated.id],
          ['000000000002', succeeded.id],
        ]);
      });

      it('continues the sequence after another instance wrote an event meanwhile', async () => {
        const subject = await make();
        const other = subject.another();
        const { orderId } = await paymentIn(subject.repo, 'CREATING');
        const events = {
          initiated: eventFor(orderId, 'INITIATED'),
          failed: eventFor(orderId, 'FAILED'),
          cancelled: eventFor(orderId, 'CANCELLED'),
          refunded: eventFor(orderId, 'REFUNDED'),
        };
        expect(await subject.repo.transition(orderId, 'INITIATED', {}, events.initiated, LATER)).toBe(
          'applied',
        );
        expect(await other.transition(orderId, 'FAILED', {}, events.failed, LATER)).toBe('applied');
        // This instance last saw sequence 1; the payment is at 2.
        expect(await subject.repo.transition(orderId, 'CANCELLED', {}, events.cancelled, LATER)).toBe(
          'applied',
        );
        expect(await other.transition(orderId, 'REFUNDED', {}, events.refunded, LATER)).toBe('applied');
        expect(await sequencesOf(subject, orderId)).toEqual([
          ['000000000001', events.initiated.id],
          ['000000000002', events.failed.id],
          ['000000000003', events.cancelled.id],
          ['000000000004', events.refunded.id],
        ]);
        expect((await other.get(orderId))?.status).toBe('REFUNDED');
      });

      it('is stale, not retried, when another instance moved the status meanwhile', async () => {
        const subject = await make();
        const other = subject.another();
        const { orderId } = await paymentIn(subject.repo, 'CREATING');
        expect(
          await subject.repo.transition(orderId, 'INITIATED', {}, eventFor(orderId, 'INITIATED'), LATER),
        ).toBe('applied');
        expect(await other.transition(orderId, 'SUCCEEDED', {}, eventFor(orderId, 'SUCCEEDED'), LATER)).toBe(
          'applied',
        );
        expect(await subject.repo.transition(orderId, 'FAILED', {}, eventFor(orderId, 'FAILED'), LATER)).toBe(
          'stale',
        );
        expect(await subject.outbox(orderId)).toHaveLength(2);
      });
    });

    describe('noteCancellationReason', () => {
      it('is a no-op without a payment: it creates none', async () => {
        const { repo } = await make();
        const orderId = unique('order-');
        await repo.noteCancellationReason(orderId, 'PAYMENT_TIMEOUT', LATER);
        await repo.noteCancellationReason(orderId, 'PAYMENT_TIMEOUT', LATER, { keepExisting: true });
        expect(await repo.get(orderId)).toBeUndefined();
      });

      it('stores the reason, replacing an earlier one', async () => {
        const { repo } = await make();
        const before = await paymentIn(repo, 'INITIATED');
        await repo.noteCancellationReason(before.orderId, 'PAYMENT_TIMEOUT', LATER);
        await repo.noteCancellationReason(before.orderId, 'CUSTOMER_CANCELLED', LATEST);
        expect(await repo.get(before.orderId)).toEqual({
          ...before,
          cancellationReason: 'CUSTOMER_CANCELLED',
          updatedAt: LATEST.toISOString(),
        });
      });

      it('with keepExisting, stores the reason only when there is none yet', async () => {
        const { repo } = await make();
        const before = await paymentIn(repo, 'INITIATED');
        await repo.noteCancellationReason(before.orderId, 'PAYMENT_TIMEOUT', LATER, { keepExisting: true });
        expect((await repo.get(before.orderId))?.cancellationReason).toBe('PAYMENT_TIMEOUT');
        await repo.noteCancellationReason(before.orderId, 'CUSTOMER_CANCELLED', LATEST, {
          keepExisting: true,
        });
        expect(await repo.get(before.orderId)).toEqual({
          ...before,
          cancellationReason: 'PAYMENT_TIMEOUT',
          updatedAt: LATEST.toISOString(),
        });
      });
    });

    describe('recordStripeEvent', () => {
      it('records an event once', async () => {
        const { repo } = await make();
        const stripeEventId = unique('evt_');
        expect(await repo.recordStripeEvent(stripeEventId, NOW)).toBe(true);
        expect(await repo.recordStripeEvent(stripeEventId, LATER)).toBe(false);
      });

      it('shares its record with transition: either way round, the second is refused', async () => {
        const subject = await make();
        const { orderId } = await paymentIn(subject.repo, 'CREATING');
        const [applied, noted] = [unique('evt_'), unique('evt_')];
        await subject.repo.transition(orderId, 'INITIATED', {}, undefined, LATER, applied);
        expect(await subject.repo.recordStripeEvent(applied, LATER)).toBe(false);
        expect(await subject.repo.recordStripeEvent(noted, LATER)).toBe(true);
        const event = eventFor(orderId, 'SUCCEEDED');
        expect(await subject.repo.transition(orderId, 'SUCCEEDED', {}, event, LATER, noted)).toBe(
          'duplicate',
        );
        expect((await subject.repo.get(orderId))?.status).toBe('INITIATED');
        expect(await subject.outbox(orderId)).toEqual([]);
      });
    });

    describe('findByPaymentIntent', () => {
      it('finds the payment that records the intent, as it is now', async () => {
        const { repo } = await make();
        const { orderId } = await paymentIn(repo, 'CREATING');
        const intent = unique('pi_');
        expect(await repo.findByPaymentIntent(intent)).toBeUndefined();
        await repo.transition(orderId, 'INITIATED', { paymentIntentId: intent }, undefined, LATER);
        await repo.transition(orderId, 'SUCCEEDED', {}, undefined, LATEST);
        const found = await repo.findByPaymentIntent(intent);
        expect(found).toEqual(await repo.get(orderId));
        expect(found).toMatchObject({ orderId, status: 'SUCCEEDED', paymentIntentId: intent });
      });
    });

    describe('nextIntentAttempt', () => {
      it('counts attempts while no intent is recorded, and is a no-op without a payment', async () => {
        const { repo } = await make();
        const before = await paymentIn(repo, 'CREATING');
        await repo.nextIntentAttempt(before.orderId, LATER);
        await repo.nextIntentAttempt(before.orderId, LATEST);
        expect(await repo.get(before.orderId)).toEqual({
          ...before,
          intentAttempt: 2,
          updatedAt: LATEST.toISOString(),
        });
        const missing = unique('order-');
        await repo.nextIntentAttempt(missing, LATER);
        expect(await repo.get(missing)).toBeUndefined();
      });

      it('changes nothing once an intent is recorded', async () => {
        const { repo } = await make();
        const { orderId } = await paymentIn(repo, 'CREATING');
        await repo.transition(orderId, 'INITIATED', { paymentIntentId: unique('pi_') }, undefined, LATER);
        const before = await repo.get(orderId);
        await repo.nextIntentAttempt(orderId, LATEST);
        expect(await repo.get(orderId)).toEqual(before);
      });
    });

    describe('markNotified', () => {
      it('records the token told, only while it is the payment’s task token', async () => {
        const { repo } = await make();
        const before = await paymentIn(repo, 'SUCCEEDED', { taskToken: 'token-1' });
        await repo.markNotified(before.orderId, 'token-0');
        expect(await repo.get(before.orderId)).toEqual(before);
        await repo.markNotified(before.orderId, 'token-1');
        expect(await repo.get(before.orderId)).toEqual({ ...before, notifiedToken: 'token-1' });
        const missing = unique('order-');
        await repo.markNotified(missing, 'token-1');
        expect(await repo.get(missing)).toBeUndefined();
      });
    });

    describe('recordRefundFailure', () => {
      it('records the failure on the payment of that intent, once per Stripe event', async () => {
        const subject = await make();
        const { orderId } = await paymentIn(subject.repo, 'CREATING');
        const intent = unique('pi_');
        await subject.repo.transition(orderId, 'SUCCEEDED', { paymentIntentId: intent }, undefined, NOW);
        const before = (await subject.repo.get(orderId))!;
        const stripeEventId = unique('evt_');
        expect(
          await subject.repo.recordRefundFailure(orderId, intent, 're_1', 'lost', LATER, stripeEventId),
        ).toBe('applied');
        const after = await subject.repo.get(orderId);
        expect(after).toEqual({
          ...before,
          failedRefundId: 're_1',
          refundFailedAt: LATER.toISOString(),
          refundFailureReason: 'lost',
          updatedAt: LATER.toISOString(),
        });
        expect(
          await subject.repo.recordRefundFailure(orderId, intent, 're_2', 'x', LATEST, stripeEventId),
        ).toBe('duplicate');
        expect(await subject.repo.get(orderId)).toEqual(after);
        expect(await subject.outbox(orderId)).toEqual([]);
      });

      it('is stale when the payment records another intent, or none', async () => {
        const { repo } = await make();
        const without = await paymentIn(repo, 'CREATING');
        const stripeEventId = unique('evt_');
        expect(
          await repo.recordRefundFailure(without.orderId, 'pi_x', 're_1', 'lost', LATER, stripeEventId),
        ).toBe('stale');
        await repo.transition(
          without.orderId,
          'SUCCEEDED',
          { paymentIntentId: unique('pi_') },
          undefined,
          NOW,
        );
        const before = await repo.get(without.orderId);
        expect(
          await repo.recordRefundFailure(without.orderId, 'pi_x', 're_1', 'lost', LATER, stripeEventId),
        ).toBe('stale');
        expect(await repo.get(without.orderId)).toEqual(before);
        // A stale change records no Stripe event either.
        expect(await repo.recordStripeEvent(stripeEventId, LATER)).toBe(true);
      });
    });

    describe('recordDecline', () => {
      const decline = (at?: Date) => ({
        lastError,
        stripeStatus: 'requires_payment_method',
        ...(at ? { lastErrorAt: at.toISOString() } : {}),
      });

      it('records the decline on the open payment of that intent, once per Stripe event', async () => {
        const { repo } = await make();
        const { orderId } = await paymentIn(repo, 'CREATING');
        const intent = unique('pi_');
        await repo.transition(orderId, 'INITIATED', { paymentIntentId: intent }, undefined, NOW);
        const before = (await repo.get(orderId))!;
        const stripeEventId = unique('evt_');
        expect(await repo.recordDecline(orderId, intent, decline(LATER), LATER, stripeEventId)).toBe(
          'applied',
        );
        const after = await repo.get(orderId);
        expect(after).toEqual({
          ...before,
          ...decline(LATER),
          status: 'INITIATED',
          updatedAt: LATER.toISOString(),
        });
        expect(await repo.recordDecline(orderId, intent, decline(LATEST), LATEST, stripeEventId)).toBe(
          'duplicate',
        );
        expect(await repo.get(orderId)).toEqual(after);
      });

      it('is stale once the payment is settled, or for another intent, or none', async () => {
        const { repo } = await make();
        const open = await paymentIn(repo, 'CREATING');
        expect(await repo.recordDecline(open.orderId, 'pi_x', decline(), LATER, unique('evt_'))).toBe(
          'stale',
        );
        const intent = unique('pi_');
        await repo.transition(open.orderId, 'INITIATED', { paymentIntentId: intent }, undefined, NOW);
        expect(await repo.recordDecline(open.orderId, 'pi_x', decline(), LATER, unique('evt_'))).toBe(
          'stale',
        );
        await repo.transition(open.orderId, 'SUCCEEDED', {}, undefined, NOW);
        const settled = await repo.get(open.orderId);
        expect(await repo.recordDecline(open.orderId, intent, decline(), LATER, unique('evt_'))).toBe(
          'stale',
        );
        expect(await repo.get(open.orderId)).toEqual(settled);
      });

      it('keeps a decline Stripe reported later over one delivered late', async () => {
        const { repo } = await make();
        const { orderId } = await paymentIn(repo, 'CREATING');
        const intent = unique('pi_');
        await repo.transition(orderId, 'INITIATED', { paymentIntentId: intent }, undefined, NOW);
        expect(await repo.recordDecline(orderId, intent, decline(LATEST), LATER, unique('evt_'))).toBe(
          'applied',
        );
        const kept = await repo.get(orderId);
        expect(await repo.recordDecline(orderId, intent, decline(LATER), LATEST, unique('evt_'))).toBe(
          'stale',
        );
        expect(await repo.get(orderId)).toEqual(kept);
        // The same moment is not later: it applies.
        expect(await repo.recordDecline(orderId, intent, decline(LATEST), LATEST, unique('evt_'))).toBe(
          'applied',
        );
      });
    });
  });
}
