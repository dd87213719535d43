import { z } from 'zod';
import { OrderIdSchema, SkuSchema } from '../../events/common.ts';
import { ValidationError } from '../../shared/errors.ts';
import type { InventoryRepository } from './inventory-repository.ts';
import { lineView, linesOf, type ReservationLineView } from './stock.ts';

/** `GET /inventory/reservations`: exactly one filter, a page size, and the cursor of the page before. */
export const ReservationQuerySchema = z
  .strictObject({
    orderId: OrderIdSchema.optional(),
    sku: SkuSchema.optional(),
    limit: z.coerce.number().int().min(1).max(100).default(50),
    cursor: z.string().min(1).max(1024).optional(),
  })
  .refine((query) => (query.orderId === undefined) !== (query.sku === undefined), {
    message: 'Give exactly one of orderId or sku.',
    path: ['orderId'],
  });
export type ReservationQuery = z.infer<typeof ReservationQuerySchema>;

/*
 * The cursor is opaque to clients: base64url JSON naming the filter it belongs to and where the
 * next page starts (a SKU within one order's lines, or the index's key for a SKU's lines).
 */
const CursorSchema = z.discriminatedUnion('by', [
  z.strictObject({ by: z.literal('orderId'), value: OrderIdSchema, after: SkuSchema }),
  z.strictObject({
    by: z.literal('sku'),
    value: SkuSchema,
    // Exactly the shape of the index's LastEvaluatedKey, so DynamoDB never sees a key it would refuse.
    key: z
      .strictObject({
        pk: z.string().regex(/^RESERVATION#.{1,64}$/),
        sk: z.string().regex(/^LINE#/),
        lineSku: SkuSchema,
        lineSort: z.string().regex(/^\d{4}-\d{2}-\d{2}T[\d:.]+Z#.{1,64}$/),
      })
      .refine(
        (key) =>
          key.sk === `LINE#${key.lineSku}` && key.lineSort.endsWith(key.pk.slice('RESERVATION#'.length)),
      ),
  }),
]);
type Cursor = z.infer<typeof CursorSchema>;

const encode = (cursor: Cursor) => Buffer.from(JSON.stringify(cursor)).toString('base64url');

function decode(text: string, by: Cursor['by'], value: string): Cursor {
  let parsed: z.ZodSafeParseResult<Cursor> | undefined;
  try {
    parsed = CursorSchema.safeParse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
  } catch {
    // not JSON: falls through to the error below
  }
  const cursor = parsed?.success ? parsed.data : undefined;
  if (
    !cursor ||
    cursor.by !== by ||
    cursor.value !== value ||
    (by === 'sku' && cursor.by === 'sku' && cursor.key.lineSku !== value)
  ) {
    throw new ValidationError(
      'The cursor is not one this query returned.',
      [{ path: 'cursor', message: 'Invalid cursor' }],
      'INVALID_CURSOR',
    );
  }
  return cursor;
}

export interface ReservationPage {
  items: ReservationLineView[];
  nextCursor?: string;
}

/**
 * Reservation lines by order (read from the reservation itself, so always current) or by SKU (from
 * the line index, newest first, which trails the reservation by the stream's delay). Holds whose time
 * has passed read EXPIRED before the sweeper gets to them.
 */
export const queryReservations =
  (deps: { inventory: InventoryRepository; now: () => Date }) =>
  async (query: ReservationQuery): Promise<ReservationPage> => {
    const now = deps.now();
    if (query.orderId !== undefined) {
      const after = query.cursor
        ? (decode(query.cursor, 'orderId', query.orderId) as { after: string }).after
        : undefined;
      const reservation = await deps.inventory.getReservation(query.orderId);
      const lines = (reservation ? linesOf(reservation) : []).filter(
        (line) => after === undefined || line.sku > after,
      );
      const page = lines.slice(0, query.limit);
      const last = page.at(-1);
      return {
        items: page.map((line) => lineView(line, now)),
        ...(lines.length > page.length && last
          ? { nextCursor: encode({ by: 'orderId', value: query.orderId, after: last.sku }) }
          : {}),
      };
    }
    const sku = query.sku!;
    const start = query.cursor
      ? (decode(query.cursor, 'sku', sku) as Extract<Cursor, { by: 'sku' }>).key
      : undefined;
    const { lines, cursor } = await deps.inventory.listLinesBySku(sku, query.limit, start);
    // The index trails the reservations: an ACTIVE line may have been sold, released or expired
    // since. Read those reservations themselves, so that a sale is never shown as expired.
    const open = [...new Set(lines.filter((line) => line.status === 'ACTIVE').map((line) => line.orderId))];
    const current = await deps.inventory.getReservations(open);
    const fresh = lines.map((line) => {
      const reservation = current.get(line.orderId);
      return reservation ? { ...line, status: reservation.status, holdUntil: reservation.holdUntil } : line;
    });
    return {
      items: fresh.map((line) => lineView(line, now)),
      ...(cursor
        ? {
            nextCursor: encode({
              by: 'sku',
              value: sku,
              key: cursor as Extract<Cursor, { by: 'sku' }>['key'],
            }),
          }
        : {}),
    };
  };
