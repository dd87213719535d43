import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createEvent, formatSequence, type CloudEvent, type EventData } from '../../events/envelope.ts';
import type { Subject } from '../../events/subjects.ts';
import { formatEventLine, formatMoney, formatUndecodableLine } from './event-line.ts';

const time = new Date('2025-03-01T12:03:04.123Z');

function event<S extends Subject>(type: S, data: EventData<S>, subject = 'o-1', position = 3): CloudEvent {
  const source = `order-saga/${type.split('.')[0]}`;
  return {
    ...createEvent(type, { source, subject, data, time }),
    sequence: formatSequence(position),
  } as CloudEvent;
}

const plain = { colors: false };
const money = { amount: 1250, currency: 'eur', paymentIntentId: 'pi_1', orderId: 'o-1' };

describe('formatEventLine', () => {
  it('puts time (UTC), subject, order, sequence and the key data on one line', () => {
    expect(
      formatEventLine(
        event('order.completed', { ...money, status: 'COMPLETED', sagaState: 'COMPLETED' }),
        plain,
      ),
    ).toBe('12:03:04.123Z  order.completed       o-1  #3  COMPLETED 12.50 EUR pi_1');
  });

  const cases: [CloudEvent, string][] = [
    [
      event('order.created', {
        orderId: 'o-1',
        status: 'PENDING',
        sagaState: 'STARTED',
        customerId: 'c-7',
        items: [
          { sku: 'SKU-1', quantity: 2 },
          { sku: 'SKU-2', quantity: 1 },
        ],
        currency: 'eur',
      }),
      'PENDING customer c-7 · SKU-1×2, SKU-2×1 · EUR',
    ],
    [
      event('order.status_changed', {
        orderId: 'o-1',
        status: 'CANCELLED',
        sagaState: 'COMPENSATED',
        previousStatus: 'PAYMENT_PENDING',
        previousSagaState: 'COMPENSATING',
        reason: 'PAYMENT_FAILED',
      }),
      'PAYMENT_PENDING → CANCELLED (saga COMPENSATING → COMPENSATED) reason PAYMENT_FAILED',
    ],
    [
      event('order.cancelled', {
        orderId: 'o-1',
        status: 'CANCELLED',
        sagaState: 'COMPENSATED',
        reason: 'OUT_OF_STOCK',
      }),
      'CANCELLED (saga COMPENSATED) reason OUT_OF_STOCK',
    ],
    [
      event('inventory.reserved', {
        orderId: 'o-1',
        reservationId: 'r-1',
        items: [{ sku: 'SKU-1', quantity: 2, unitPrice: 625 }],
        amount: 1250,
        currency: 'eur',
        expiresAt: '2025-03-01T12:18:04.123Z',
      }),
      'SKU-1×2 · 12.50 EUR · until 12:18:04.123Z',
    ],
    [
      event('inventory.out_of_stock', { orderId: 'o-1', reason: 'OUT_OF_STOCK', skus: ['SKU-1', 'SKU-2'] }),
      'OUT_OF_STOCK SKU-1, SKU-2',
    ],
    [
      event('inventory.released', {
        orderId: 'o-1',
        reservationId: 'r-1',
        items: [{ sku: 'SKU-1', quantity: 2 }],
        reason: 'EXPIRED',
      }),
      'EXPIRED SKU-1×2',
    ],
    [
      event('inventory.low_stock', { sku: 'SKU-1', available: 3, threshold: 5 }, 'SKU-1'),
      'available 3, threshold 5',
    ],
    [
      event('payment.initiated', { ...money, status: 'requires_confirmation' }),
      '12.50 EUR pi_1 requires_confirmation',
    ],
    [event('payment.succeeded', money), '12.50 EUR pi_1'],
    [
      event('payment.failed', { ...money, reason: 'card_declined', failureCode: 'generic_decline' }),
      '12.50 EUR pi_1 reason card_declined (generic_decline)',
    ],
    [
      event('payment.cancelled', { ...money, reason: 'PAYMENT_TIMEOUT' }),
      '12.50 EUR pi_1 reason PAYMENT_TIMEOUT',
    ],
    [
      event('payment.refunded', { ...money, reason: 'RESERVATION_EXPIRED', refundId: 're_1' }),
      '12.50 EUR pi_1 reason RESERVATION_EXPIRED refund re_1',
    ],
  ];
  it.each(cases.map(([input, details]) => [input.type, input, details] as const))(
    'shows the key data of %s',
    (_type, input, details) => {
      expect(formatEventLine(input, plain).split('  ').at(-1)).toBe(details);
    },
  );

  it('colours only when asked to', () => {
    const cancelled = event('order.cancelled', {
      orderId: 'o-1',
      status: 'CANCELLED',
      sagaState: 'COMPENSATED',
    });
    // eslint-disable-next-line no-control-regex
    const ansi = /\u001b\[/;
    expect(formatEventLine(cancelled, plain)).not.toMatch(ansi);
    const coloured = formatEventLine(cancelled, { colors: true });
    expect(coloured).toContain('\u001b[31morder.cancelled');
    // eslint-disable-next-line no-control-regex
    expect(coloured.replaceAll(/\u001b\[\d+m/g, '')).toBe(formatEventLine(cancelled, plain));
  });
});

describe('formatMoney', () => {
  it("uses the currency's minor unit", () => {
    expect(formatMoney(1250, 'eur')).toBe('12.50 EUR');
    expect(formatMoney(5, 'usd')).toBe('0.05 USD');
    expect(formatMoney(500, 'jpy')).toBe('500 JPY');
    expect(formatMoney(1234, 'kwd')).toBe('1.234 KWD');
  });
});

describe('formatUndecodableLine', () => {
  it('keeps a line a line for a message that is nothing like an event', () => {
    const result = z
      .object({ a: z.string(), b: z.string(), c: z.string(), d: z.string(), e: z.string() })
      .safeParse({});
    const line = formatUndecodableLine(
      { subject: 'order.created', streamSequence: 1, time },
      result.error,
      plain,
    );
    expect(line).toMatch(/a: .*; b: .*; c: .*; and 2 more$/);
    expect(line).not.toContain('\n');
  });

  it('names the subject, the stream sequence and what is wrong, on one line', () => {
    const result = z.object({ orderId: z.string() }).safeParse({});
    const line = formatUndecodableLine(
      { subject: 'order.created', streamSequence: 42, time },
      result.error,
      plain,
    );
    expect(line).toBe(
      '12:03:04.123Z  order.created         not a valid event (stream sequence 42): orderId: Invalid input: expected string, received undefined',
    );
  });
});
