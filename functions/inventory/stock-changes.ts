import { createHash } from 'node:crypto';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { DynamoDBRecord } from 'aws-lambda';
import { createEvent } from '../../events/envelope.ts';
import { orderedStreamRunner } from '../../shared/stream-runner.ts';
import { restoreDeletedReservation, type ReservationDeps } from './reservations.ts';
import { INVENTORY_SOURCE, isLowOnStock, type Product, type Reservation } from './stock.ts';

/*
 * What the inventory service does with its own table's stream (products and reservations, by
 * filter), after the fact and idempotently:
 * - a reservation written → its lines projected for the by-SKU query;
 * - an ACTIVE reservation deleted by TTL → put back as EXPIRED with its stock returned, once;
 * - a product whose `available` fell below its threshold → `inventory.low_stock`, once per crossing.
 */

/** The Lambda filter pattern: product and reservation records, every kind of change. */
export const STOCK_CHANGES_FILTER = { dynamodb: { Keys: { sk: { S: ['PRODUCT', 'RESERVATION'] } } } };

export interface StockChangesDeps extends ReservationDeps {
  onError: (error: unknown, record: DynamoDBRecord) => void;
}

const image = <T>(value: unknown): T | undefined =>
  value ? (unmarshall(value as Record<string, AttributeValue>) as T) : undefined;

/** A stable UUID-shaped id for what one stream record causes: redeliveries produce the same event. */
function idFor(record: DynamoDBRecord, purpose: string): string {
  const hex = createHash('sha256').update(`${purpose}:${record.eventID}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/**
 * A crossing is one record: the product was not low before it and is low after it (by each image's
 * own threshold, so a PUT that raises the threshold above the stock counts too). Every change of a
 * product is a record, so every crossing is seen exactly once, and staying low or recovering is not
 * one. The event's id and time derive from that record, so a redelivery rewrites the same outbox
 * item, which its condition refuses: one event per crossing.
 */
async function onProduct(deps: StockChangesDeps, record: DynamoDBRecord) {
  const before = image<Product>(record.dynamodb?.OldImage);
  const after = image<Product>(record.dynamodb?.NewImage);
  if (!after || !isLowOnStock(after) || (before && isLowOnStock(before))) return;
  const seconds = record.dynamodb?.ApproximateCreationDateTime;
  await deps.inventory.recordLowStock(
    createEvent('inventory.low_stock', {
      id: idFor(record, 'low-stock'),
      source: INVENTORY_SOURCE,
      subject: after.sku,
      time: seconds ? new Date(seconds * 1000) : deps.now(),
      data: { sku: after.sku, available: after.available, threshold: after.lowStockThreshold },
    }),
  );
}

async function onReservation(deps: StockChangesDeps, record: DynamoDBRecord) {
  if (record.eventName === 'REMOVE') {
    const deleted = image<Reservation>(record.dynamodb?.OldImage);
    if (deleted) await restoreDeletedReservation(deps)(deleted);
    return;
  }
  const reservation = image<Reservation>(record.dynamodb?.NewImage);
  if (reservation) await deps.inventory.putLines(reservation);
}

/**
 * Handles a batch in order per item (the ordered stream runner): one product's or reservation's
 * changes are never applied out of order, and a failing one holds back only its own later changes.
 */
export const reactToStockChanges = (deps: StockChangesDeps) =>
  orderedStreamRunner(
    async (record) => {
      const sk = record.dynamodb?.Keys?.sk?.S;
      if (sk === 'PRODUCT') await onProduct(deps, record);
      else if (sk === 'RESERVATION') await onReservation(deps, record);
    },
    { onError: deps.onError },
  );
