import { randomUUID } from 'node:crypto';
import { createEvent } from '../../events/envelope.ts';
import { ConcurrentChangeError } from '../../shared/saga.ts';
import { SWEEP_SHARDS, type InventoryRepository, type PageKey } from './inventory-repository.ts';
import {
  INVENTORY_SOURCE,
  isExpired,
  outcomeOf,
  priceLines,
  ReservationClosedError,
  ReservationConfirmedError,
  ReservationExpiredError,
  ReservationNotFoundError,
  type Reservation,
  type ReserveCommand,
  type ReserveOutcome,
} from './stock.ts';

export interface ReservationDeps {
  inventory: InventoryRepository;
  now: () => Date;
  ttlSeconds: number;
  /** A refusal was recorded (once per order: not when a repeat reads it back); for the metrics. */
  onRefused?: (reason: 'OUT_OF_STOCK' | 'UNKNOWN_PRODUCT') => void;
}

/**
 * The TTL attribute of an ACTIVE reservation trails its hold by a day: the sweeper is what returns
 * stock, and DynamoDB's TTL (hours to days on AWS, seconds on DynamoDB Local) must never delete a
 * hold before the sweeper has released it.
 */
export const TTL_GRACE_SECONDS = 24 * 3600;

/** Catalogue prices may change between our read and our write; a few fresh attempts settle it. */
const MAX_RESERVE_ATTEMPTS = 3;

/**
 * Reserves every line of an order in one transaction, or none. Out of stock and unknown
 * products are outcomes (with their event), not errors; reserving the same order again answers
 * what the first attempt decided.
 */
export const reserveStock =
  (deps: ReservationDeps) =>
  async (command: ReserveCommand): Promise<ReserveOutcome> => {
    for (let attempt = 1; attempt <= MAX_RESERVE_ATTEMPTS; attempt++) {
      const existing = await deps.inventory.getReservation(command.orderId);
      if (existing?.status === 'RELEASED' || existing?.status === 'EXPIRED') {
        throw new ReservationClosedError(command.orderId, existing.status);
      }
      if (existing) return outcomeOf(existing);

      const now = deps.now();
      const products = await deps.inventory.getProducts(command.items.map((item) => item.sku));
      const priced = priceLines(command, products);
      if ('unknown' in priced) return reject(deps, command, 'UNKNOWN_PRODUCT', priced.unknown, now);

      const holdUntil = Math.floor(now.getTime() / 1000) + deps.ttlSeconds;
      const reservation: Reservation = {
        reservationId: randomUUID(),
        orderId: command.orderId,
        status: 'ACTIVE',
        lines: priced.lines,
        amount: priced.amount,
        currency: command.currency,
        holdUntil,
        expiresAt: holdUntil + TTL_GRACE_SECONDS,
        createdAt: now.toISOString(),
        updatedAt: now.toISOString(),
      };
      const event = createEvent('inventory.reserved', {
        source: INVENTORY_SOURCE,
        subject: command.orderId,
        time: now,
        data: {
          orderId: command.orderId,
          reservationId: reservation.reservationId,
          items: reservation.lines,
          amount: reservation.amount,
          currency: reservation.currency,
          expiresAt: new Date(holdUntil * 1000).toISOString(),
        },
      });
      const result = await deps.inventory.reserve(reservation, event);
      if (result.written) return outcomeOf(reservation);
      if (result.duplicate) continue; // a concurrent attempt for this order won: answer with its result
      if (result.short.length > 0) return reject(deps, command, 'OUT_OF_STOCK', result.short, now);
      // Only prices or currencies moved under us: price again.
    }
    throw new ConcurrentChangeError(
      `Could not reserve stock for order ${command.orderId}: the catalogue kept changing`,
    );
  };

async function reject(
  deps: ReservationDeps,
  command: ReserveCommand,
  reason: 'OUT_OF_STOCK' | 'UNKNOWN_PRODUCT',
  skus: string[],
  now: Date,
): Promise<ReserveOutcome> {
  const reservation: Reservation = {
    reservationId: randomUUID(),
    orderId: command.orderId,
    status: 'REJECTED',
    lines: [],
    amount: 0,
    currency: command.currency,
    holdUntil: 0,
    createdAt: now.toISOString(),
    updatedAt: now.toISOString(),
    rejection: { reason, skus },
  };
  const event = createEvent('inventory.out_of_stock', {
    source: INVENTORY_SOURCE,
    subject: command.orderId,
    time: now,
    data: { orderId: command.orderId, reason, skus },
  });
  if (await deps.inventory.reject(reservation, event)) {
    deps.onRefused?.(reason);
    return outcomeOf(reservation);
  }
  const winner = await deps.inventory.getReservation(command.orderId);
  return outcomeOf(winner ?? reservation);
}

/** Turns the order's hold into a sale. Confirming twice is harmless; an expired hold cannot be sold. */
export const confirmStock =
  (deps: ReservationDeps) =>
  async (orderId: string): Promise<{ reservationId: string; status: 'CONFIRMED' }> => {
    const reservation = await deps.inventory.getReservation(orderId);
    if (!reservation || reservation.status === 'REJECTED') throw new ReservationNotFoundError(orderId);
    const confirmed = { reservationId: reservation.reservationId, status: 'CONFIRMED' as const };
    if (reservation.status === 'CONFIRMED') return confirmed;
    if (reservation.status !== 'ACTIVE' || isExpired(reservation, deps.now()))
      throw new ReservationExpiredError(orderId);
    if (await deps.inventory.confirm(reservation, deps.now())) return confirmed;
    // Lost a race (the sweeper, or a concurrent confirm): decide from the stored state.
    const after = await deps.inventory.getReservation(orderId);
    if (after?.status === 'CONFIRMED') return confirmed;
    throw new ReservationExpiredError(orderId);
  };

/**
 * Compensation: gives the order's stock back. Nothing reserved, or already released or expired, is
 * a no-op; a confirmed (sold) reservation is never released.
 */
export const releaseStock =
  (deps: ReservationDeps) =>
  async (orderId: string): Promise<{ status: Reservation['status'] | 'NONE' }> => {
    const reservation = await deps.inventory.getReservation(orderId);
    if (!reservation) return { status: 'NONE' };
    if (reservation.status === 'CONFIRMED') throw new ReservationConfirmedError(orderId);
    if (reservation.status !== 'ACTIVE') return { status: reservation.status };
    if (await releaseAs(deps, reservation, 'RELEASED')) return { status: 'RELEASED' };
    const after = await deps.inventory.getReservation(orderId);
    if (after?.status === 'CONFIRMED') throw new ReservationConfirmedError(orderId);
    return { status: after?.status ?? 'NONE' };
  };

function releasedEvent(reservation: Reservation, to: 'RELEASED' | 'EXPIRED', now: Date) {
  return createEvent('inventory.released', {
    source: INVENTORY_SOURCE,
    subject: reservation.orderId,
    time: now,
    data: {
      orderId: reservation.orderId,
      reservationId: reservation.reservationId,
      items: reservation.lines.map(({ sku, quantity }) => ({ sku, quantity })),
      reason: to === 'EXPIRED' ? 'EXPIRED' : 'COMPENSATION',
    },
  });
}

async function releaseAs(deps: ReservationDeps, reservation: Reservation, to: 'RELEASED' | 'EXPIRED') {
  const now = deps.now();
  return deps.inventory.release(reservation, to, releasedEvent(reservation, to, now), now);
}

/**
 * The sweeper: releases every ACTIVE reservation whose hold has ended, a page at a time, each shard of
 * the index in parallel and at most `maxPagesPerShard` pages each, so one run stays bounded. Safe to
 * run alongside itself and the saga: each release is conditional on the reservation still being
 * ACTIVE and its hold over.
 */
export const sweepExpired =
  (deps: ReservationDeps & { pageSize?: number; maxPagesPerShard?: number }) =>
  async (): Promise<{ expired: number; failures: unknown[] }> => {
    const failures: unknown[] = [];
    const sweepShard = async (shard: number) => {
      let expired = 0;
      let cursor: PageKey | undefined;
      for (let page = 0; page < (deps.maxPagesPerShard ?? 5); page++) {
        const result = await deps.inventory.listExpired(shard, deps.now(), deps.pageSize ?? 25, cursor);
        for (const orderId of result.orderIds) {
          // One hold that cannot be released now (say, a hot SKU's contention) never blocks the rest.
          try {
            const reservation = await deps.inventory.getReservation(orderId);
            if (reservation?.status === 'ACTIVE' && (await releaseAs(deps, reservation, 'EXPIRED')))
              expired++;
          } catch (error) {
            failures.push(error);
          }
        }
        cursor = result.cursor;
        if (!cursor) break;
      }
      return expired;
    };
    const shards = await Promise.allSettled(
      Array.from({ length: SWEEP_SHARDS }, (_, shard) => sweepShard(shard)),
    );
    let expired = 0;
    for (const shard of shards) {
      if (shard.status === 'fulfilled') expired += shard.value;
      else failures.push(shard.reason);
    }
    return { expired, failures };
  };

/**
 * An ACTIVE reservation deleted by DynamoDB's TTL (only possible when the sweeper has not released it
 * for a day): puts it back as EXPIRED and returns its stock. The deleted record's absence is the
 * guard, so a redelivered stream record never returns the stock twice.
 */
export const restoreDeletedReservation =
  (deps: ReservationDeps) =>
  async (deleted: Reservation): Promise<boolean> => {
    if (deleted.status !== 'ACTIVE') return false; // closed reservations carry no TTL, and no stock
    const now = deps.now();
    return deps.inventory.restoreExpired(deleted, releasedEvent(deleted, 'EXPIRED', now), now);
  };
