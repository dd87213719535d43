import { describe, expect, it } from 'vitest';
import {
  isExpired,
  isLowOnStock,
  lineView,
  linesOf,
  outcomeOf,
  priceLines,
  productView,
  type Product,
  type Reservation,
  type ReservationStatus,
} from './stock.ts';

function product(sku: string, unitPrice: number, currency = 'usd'): Product {
  return {
    sku,
    name: `Product ${sku}`,
    unitPrice,
    currency,
    available: 10,
    reserved: 0,
    lowStockThreshold: 0,
    updatedAt: '2025-01-01T00:00:00.000Z',
  };
}

const catalogue = new Map<string, Product>([
  ['mug', product('mug', 1250)],
  ['tee', product('tee', 1999)],
  ['euro-cap', product('euro-cap', 900, 'eur')],
]);

const EXPIRES_AT = Date.parse('2025-01-01T00:15:00.000Z') / 1000;

function reservation(overrides: Partial<Reservation> = {}): Reservation {
  return {
    reservationId: 'res-1',
    orderId: 'order-1',
    status: 'ACTIVE',
    lines: [{ sku: 'mug', quantity: 2, unitPrice: 1250 }],
    amount: 2500,
    currency: 'usd',
    holdUntil: EXPIRES_AT,
    expiresAt: EXPIRES_AT,
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:00:00.000Z',
    ...overrides,
  };
}

describe('priceLines', () => {
  it('prices every line from the catalogue and sums quantity × unit price', () => {
    const priced = priceLines(
      {
        orderId: 'o',
        currency: 'usd',
        items: [
          { sku: 'mug', quantity: 2 },
          { sku: 'tee', quantity: 3 },
        ],
      },
      catalogue,
    );
    expect(priced).toEqual({
      lines: [
        { sku: 'mug', quantity: 2, unitPrice: 1250 },
        { sku: 'tee', quantity: 3, unitPrice: 1999 },
      ],
      amount: 2 * 1250 + 3 * 1999,
    });
  });

  it('lists every sku the catalogue does not have', () => {
    const priced = priceLines(
      {
        orderId: 'o',
        currency: 'usd',
        items: [
          { sku: 'ghost', quantity: 1 },
          { sku: 'mug', quantity: 1 },
          { sku: 'phantom', quantity: 1 },
        ],
      },
      catalogue,
    );
    expect(priced).toEqual({ unknown: ['ghost', 'phantom'] });
  });

  it('treats a product not sold in the order currency as unknown', () => {
    expect(
      priceLines({ orderId: 'o', currency: 'usd', items: [{ sku: 'euro-cap', quantity: 1 }] }, catalogue),
    ).toEqual({ unknown: ['euro-cap'] });
    expect(
      priceLines({ orderId: 'o', currency: 'eur', items: [{ sku: 'mug', quantity: 1 }] }, catalogue),
    ).toEqual({
      unknown: ['mug'],
    });
  });

  it('prices a free product at zero', () => {
    const withFree = new Map(catalogue).set('sticker', product('sticker', 0));
    expect(
      priceLines(
        {
          orderId: 'o',
          currency: 'usd',
          items: [
            { sku: 'sticker', quantity: 5 },
            { sku: 'mug', quantity: 1 },
          ],
        },
        withFree,
      ),
    ).toMatchObject({ amount: 1250 });
  });
});

describe('isExpired', () => {
  const expiry = new Date(EXPIRES_AT * 1000);

  it('an ACTIVE reservation is live until its expiry and expired from that instant on', () => {
    expect(isExpired(reservation(), new Date(expiry.getTime() - 1))).toBe(false);
    expect(isExpired(reservation(), expiry)).toBe(true);
    expect(isExpired(reservation(), new Date(expiry.getTime() + 60_000))).toBe(true);
  });

  it('an EXPIRED reservation is expired even before its time', () => {
    expect(isExpired(reservation({ status: 'EXPIRED' }), new Date(0))).toBe(true);
  });

  it.each<ReservationStatus>(['CONFIRMED', 'RELEASED', 'REJECTED'])(
    'a %s reservation never expires, even past its time',
    (status) => {
      expect(isExpired(reservation({ status }), new Date(expiry.getTime() + 3_600_000))).toBe(false);
    },
  );
});

describe('outcomeOf', () => {
  it('reports a reservation as RESERVED with its lines, total and ISO expiry', () => {
    expect(outcomeOf(reservation())).toEqual({
      outcome: 'RESERVED',
      reservationId: 'res-1',
      amount: 2500,
      currency: 'usd',
      items: [{ sku: 'mug', quantity: 2, unitPrice: 1250 }],
      expiresAt: '2025-01-01T00:15:00.000Z',
    });
  });

  it.each(['OUT_OF_STOCK', 'UNKNOWN_PRODUCT'] as const)(
    'reports a rejection as REJECTED with %s',
    (reason) => {
      const rejected = reservation({
        status: 'REJECTED',
        lines: [],
        amount: 0,
        rejection: { reason, skus: ['mug', 'tee'] },
      });
      expect(outcomeOf(rejected)).toEqual({ outcome: 'REJECTED', reason, skus: ['mug', 'tee'] });
    },
  );
});

describe('a closed reservation', () => {
  it('keeps its hold time for the record after the TTL attribute is removed', () => {
    const confirmed = reservation({ status: 'CONFIRMED', expiresAt: undefined });
    expect(outcomeOf(confirmed)).toMatchObject({
      outcome: 'RESERVED',
      expiresAt: '2025-01-01T00:15:00.000Z',
    });
    expect(isExpired(confirmed, new Date('2030-01-01T00:00:00.000Z'))).toBe(false);
  });
});

describe('reservation lines', () => {
  const held = reservation({
    lines: [
      { sku: 'tee', quantity: 1, unitPrice: 1999 },
      { sku: 'mug', quantity: 2, unitPrice: 1250 },
    ],
  });

  it('one line per SKU, in SKU order, carrying the reservation it belongs to', () => {
    expect(linesOf(held).map((line) => [line.sku, line.quantity, line.status, line.orderId])).toEqual([
      ['mug', 2, 'ACTIVE', 'order-1'],
      ['tee', 1, 'ACTIVE', 'order-1'],
    ]);
  });

  it('a rejected attempt has no lines', () => {
    expect(linesOf(reservation({ status: 'REJECTED', lines: [] }))).toEqual([]);
  });

  it('shows the hold end as expiresAt, and an ACTIVE hold past it as EXPIRED', () => {
    const [line] = linesOf(held);
    const before = new Date((EXPIRES_AT - 1) * 1000);
    const after = new Date(EXPIRES_AT * 1000);
    expect(lineView(line!, before)).toEqual({
      reservationId: 'res-1',
      orderId: 'order-1',
      sku: 'mug',
      quantity: 2,
      status: 'ACTIVE',
      expiresAt: '2025-01-01T00:15:00.000Z',
      createdAt: '2025-01-01T00:00:00.000Z',
    });
    expect(lineView(line!, after).status).toBe('EXPIRED');
    expect(lineView({ ...line!, status: 'CONFIRMED' }, after).status).toBe('CONFIRMED');
  });
});

describe('low stock', () => {
  it('is strictly below the threshold; a threshold of 0 never alerts', () => {
    expect(isLowOnStock({ available: 4, lowStockThreshold: 5 })).toBe(true);
    expect(isLowOnStock({ available: 5, lowStockThreshold: 5 })).toBe(false);
    expect(isLowOnStock({ available: 0, lowStockThreshold: 0 })).toBe(false);
  });
});

describe('productView', () => {
  it('shows the public product and keeps the stock ledger internal', () => {
    const stored: Product = { ...product('mug', 1250), stocked: 14, sold: 4, soldIncomplete: true };
    expect(productView(stored)).toEqual({
      sku: 'mug',
      name: 'Product mug',
      unitPrice: 1250,
      currency: 'usd',
      available: 10,
      reserved: 0,
      lowStockThreshold: 0,
      updatedAt: '2025-01-01T00:00:00.000Z',
    });
  });
});
