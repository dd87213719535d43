import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CurrencySchema, MinorUnitsSchema } from '../../events/common.ts';
import { SagaOutcome, SagaOutcomeError, type ReserveCommand } from '../../shared/saga.ts';

// The saga's commands to this service are defined with the saga's contract.
export { OrderRefSchema, ReserveCommandSchema, type ReserveCommand } from '../../shared/saga.ts';

export const INVENTORY_SOURCE = 'order-saga/inventory';

export const PutProductRequestSchema = z.strictObject({
  name: z.string().min(1).max(200),
  unitPrice: MinorUnitsSchema,
  currency: CurrencySchema,
  available: z.number().int().min(0).max(1_000_000_000),
  lowStockThreshold: z.number().int().min(0).max(1_000_000_000).optional(),
});
export type PutProductRequest = z.infer<typeof PutProductRequestSchema>;

/** The most units one adjustment adds or removes, as for `available` in a PUT. */
export const MAX_ADJUSTMENT = 1_000_000_000;

/** `POST /products/{sku}/stock-adjustments`: units to add (positive) or remove (negative). */
export const AdjustStockRequestSchema = z.strictObject({
  delta: z
    .number()
    .int()
    .min(-MAX_ADJUSTMENT)
    .max(MAX_ADJUSTMENT)
    .refine((delta) => delta !== 0, 'an adjustment adds or removes at least one unit'),
  reason: z.string().min(1).max(200).optional(),
});
export type AdjustStockRequest = z.infer<typeof AdjustStockRequestSchema>;

/** The canonical form of an adjustment, so that key order and whitespace do not change its identity. */
export function adjustmentHash(request: AdjustStockRequest): string {
  return createHash('sha256')
    .update(JSON.stringify([request.delta, request.reason ?? null]))
    .digest('hex');
}

export interface Product {
  sku: string;
  name: string;
  unitPrice: number;
  currency: string;
  /** Units free to sell. */
  available: number;
  /** Units held by ACTIVE reservations. */
  reserved: number;
  lowStockThreshold: number;
  updatedAt: string;
  /**
   * Goes up by one with every write of the product (PUT, adjustment, reserve, confirm, release,
   * expiry), in that same write: the product's ETag. Absent, and so 0, on a product last written
   * before versions existed.
   */
  version?: number;
  /**
   * The stock ledger, internal (never in the API view): every unit put in is free, held or sold, so
   * `available + reserved + sold = stocked`. `stocked` is set by each PUT and moved by each
   * adjustment, `sold` grows with each confirmed reservation, in the same conditional writes that
   * move `available` and `reserved`.
   * Absent on a product last written before the ledger existed.
   */
  stocked?: number;
  /** Units of CONFIRMED reservations (sold). */
  sold?: number;
  /**
   * The ledger began on a product that already existed: sales before it are not in `sold`, so only
   * `sold <= units confirmed` can be checked, not equality.
   */
  soldIncomplete?: boolean;
}

/** The product as `GET /products/{sku}` and `PUT` show it: the ledger stays internal, the version is the ETag. */
export type ProductView = Omit<Product, 'stocked' | 'sold' | 'soldIncomplete' | 'version'>;

/** The product's version; a product written before versions existed is at 0. */
export const versionOf = (product: Pick<Product, 'version'>): number => product.version ?? 0;

/**
 * What a write of a product requires of it first: that it exists (`If-Match: *`), that it is still
 * at the version the client read, or something no product meets (an `If-Match` naming no version).
 */
export type VersionPrecondition = 'exists' | { version: number } | 'unmatchable';

/** Whether a product that exists meets the precondition (none: always). */
export function meetsPrecondition(product: Pick<Product, 'version'>, precondition?: VersionPrecondition) {
  if (precondition === undefined || precondition === 'exists') return true;
  return precondition !== 'unmatchable' && versionOf(product) === precondition.version;
}

export function productView(product: Product): ProductView {
  return {
    sku: product.sku,
    name: product.name,
    unitPrice: product.unitPrice,
    currency: product.currency,
    available: product.available,
    reserved: product.reserved,
    lowStockThreshold: product.lowStockThreshold,
    updatedAt: product.updatedAt,
  };
}

/** Whether a product's free stock is below its alert threshold (a threshold of 0 never alerts). */
export const isLowOnStock = (product: Pick<Product, 'available' | 'lowStockThreshold'>) =>
  product.available < product.lowStockThreshold;

export type ReservationStatus = 'ACTIVE' | 'CONFIRMED' | 'RELEASED' | 'EXPIRED' | 'REJECTED';

export interface ReservedLine {
  sku: string;
  quantity: number;
  unitPrice: number;
}

/** One order's hold on stock: every line, reserved together. */
export interface Reservation {
  reservationId: string;
  orderId: string;
  status: ReservationStatus;
  lines: ReservedLine[];
  amount: number;
  currency: string;
  /** Epoch seconds when the hold ends; kept for the record after the reservation closes. */
  holdUntil: number;
  /** The table's TTL attribute: a day after `holdUntil` while ACTIVE, removed once confirmed or released. */
  expiresAt?: number;
  createdAt: string;
  updatedAt: string;
  rejection?: { reason: 'OUT_OF_STOCK' | 'UNKNOWN_PRODUCT'; skus: string[] };
  /** The last `sequence` of the reservation's events (kept by the repository). */
  eventSequence?: number;
}

/** One line of a reservation, stored for the by-SKU index (a projection of the reservation). */
export interface ReservationLine {
  reservationId: string;
  orderId: string;
  sku: string;
  quantity: number;
  status: ReservationStatus;
  holdUntil: number;
  createdAt: string;
  updatedAt: string;
}

/** A reservation line as `GET /inventory/reservations` shows it. */
export interface ReservationLineView {
  reservationId: string;
  orderId: string;
  sku: string;
  quantity: number;
  status: Exclude<ReservationStatus, 'REJECTED'>;
  expiresAt: string;
  createdAt: string;
}

/** The API view of a line: a hold whose time has passed reads EXPIRED even before the sweeper ran. */
export function lineView(line: ReservationLine, now: Date): ReservationLineView {
  const expired = line.status === 'ACTIVE' && line.holdUntil * 1000 <= now.getTime();
  return {
    reservationId: line.reservationId,
    orderId: line.orderId,
    sku: line.sku,
    quantity: line.quantity,
    status: expired ? 'EXPIRED' : (line.status as ReservationLineView['status']),
    expiresAt: new Date(line.holdUntil * 1000).toISOString(),
    createdAt: line.createdAt,
  };
}

/** Every line of a reservation, by SKU; a rejected attempt has none. */
export function linesOf(reservation: Reservation): ReservationLine[] {
  if (reservation.status === 'REJECTED') return [];
  return reservation.lines
    .map((line) => ({
      reservationId: reservation.reservationId,
      orderId: reservation.orderId,
      sku: line.sku,
      quantity: line.quantity,
      status: reservation.status,
      holdUntil: reservation.holdUntil,
      createdAt: reservation.createdAt,
      updatedAt: reservation.updatedAt,
    }))
    .sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
}

/** What the saga learns from a reservation attempt: a value, not an exception. */
export type ReserveOutcome =
  | {
      outcome: 'RESERVED';
      reservationId: string;
      amount: number;
      currency: string;
      items: ReservedLine[];
      expiresAt: string;
    }
  | { outcome: 'REJECTED'; reason: 'OUT_OF_STOCK' | 'UNKNOWN_PRODUCT'; skus: string[] };

export function outcomeOf(reservation: Reservation): ReserveOutcome {
  if (reservation.rejection) return { outcome: 'REJECTED', ...reservation.rejection };
  return {
    outcome: 'RESERVED',
    reservationId: reservation.reservationId,
    amount: reservation.amount,
    currency: reservation.currency,
    items: reservation.lines,
    expiresAt: new Date(reservation.holdUntil * 1000).toISOString(),
  };
}

/**
 * Prices every line from the catalogue. Products that do not exist, or are not sold in the
 * order's currency, make the order UNKNOWN_PRODUCT.
 */
export function priceLines(
  command: ReserveCommand,
  products: ReadonlyMap<string, Product>,
): { lines: ReservedLine[]; amount: number } | { unknown: string[] } {
  const unknown = command.items
    .filter((item) => products.get(item.sku)?.currency !== command.currency)
    .map((item) => item.sku);
  if (unknown.length > 0) return { unknown };
  const lines = command.items.map((item) => ({
    sku: item.sku,
    quantity: item.quantity,
    unitPrice: products.get(item.sku)!.unitPrice,
  }));
  return { lines, amount: lines.reduce((sum, line) => sum + line.quantity * line.unitPrice, 0) };
}

/** The reservation has outlived its TTL, whatever the sweeper or DynamoDB's TTL process has done yet. */
export function isExpired(reservation: Reservation, now: Date): boolean {
  return (
    reservation.status === 'EXPIRED' ||
    (reservation.status === 'ACTIVE' && reservation.holdUntil * 1000 <= now.getTime())
  );
}

export class ReservationExpiredError extends SagaOutcomeError {
  constructor(orderId: string, options?: ErrorOptions) {
    super(SagaOutcome.ReservationExpired, `The stock reservation of order ${orderId} has expired`, options);
  }
}

export class ReservationNotFoundError extends Error {
  constructor(orderId: string, options?: ErrorOptions) {
    super(`Order ${orderId} has no stock reservation`, options);
    this.name = 'ReservationNotFoundError';
  }
}

/** A reserve for an order whose reservation was already released or expired: the saga has moved on. */
export class ReservationClosedError extends SagaOutcomeError {
  constructor(orderId: string, status: ReservationStatus, options?: ErrorOptions) {
    super(
      SagaOutcome.ReservationClosed,
      `The reservation of order ${orderId} is ${status}; it cannot be reserved again`,
      options,
    );
  }
}

export class ReservationConfirmedError extends Error {
  constructor(orderId: string, options?: ErrorOptions) {
    super(`The reservation of order ${orderId} is already confirmed (sold); it cannot be released`, options);
    this.name = 'ReservationConfirmedError';
  }
}

/**
 * The saga task's answer to a refused reservation: the outcome value, raised so that the state
 * machine compensates with its reason. The SKUs that were short or unknown are in the message, and
 * in its detail (shared/saga.ts), which the order records.
 */
export class StockUnavailableError extends SagaOutcomeError {
  readonly skus: readonly string[];
  constructor(reason: 'OUT_OF_STOCK' | 'UNKNOWN_PRODUCT', skus: readonly string[], options?: ErrorOptions) {
    super(
      reason === 'OUT_OF_STOCK' ? SagaOutcome.OutOfStock : SagaOutcome.UnknownProduct,
      `${reason === 'OUT_OF_STOCK' ? 'Not enough stock' : 'Unknown products'}: ${skus.join(', ')}`,
      { ...options, ...(skus.length > 0 ? { detail: { skus: [...skus] } } : {}) },
    );
    this.skus = skus;
  }
}
