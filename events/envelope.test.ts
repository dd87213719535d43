import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ZodError } from 'zod';
import {
  CloudEventSchema,
  createEvent,
  formatSequence,
  EVENT_DATA_SCHEMAS,
  parseEvent,
  type CloudEvent,
  type EventData,
} from './envelope.ts';
import { STREAMS, SUBJECTS, type Subject } from './subjects.ts';

const payment = { orderId: 'order-1', paymentIntentId: 'pi_1', amount: 2500, currency: 'usd' };

/** One valid `data` per subject, as producers send them. */
const SAMPLE_DATA: { [S in Subject]: EventData<S> } = {
  'order.created': {
    orderId: 'order-1',
    status: 'PENDING',
    sagaState: 'STARTED',
    customerId: 'cust-1',
    items: [{ sku: 'mug', quantity: 2 }],
    currency: 'usd',
  },
  'order.status_changed': {
    orderId: 'order-1',
    status: 'STOCK_RESERVED',
    sagaState: 'STOCK_RESERVED',
    previousStatus: 'PENDING',
    previousSagaState: 'STARTED',
  },
  'order.cancelled': {
    orderId: 'order-1',
    status: 'CANCELLED',
    sagaState: 'COMPENSATED',
    reason: 'OUT_OF_STOCK',
  },
  'order.completed': {
    orderId: 'order-1',
    status: 'COMPLETED',
    sagaState: 'COMPLETED',
    amount: 2500,
    currency: 'usd',
    paymentIntentId: 'pi_1',
  },
  'inventory.reserved': {
    orderId: 'order-1',
    reservationId: 'res-1',
    items: [{ sku: 'mug', quantity: 2, unitPrice: 1250 }],
    amount: 2500,
    currency: 'usd',
    expiresAt: '2025-01-01T00:15:00.000Z',
  },
  'inventory.out_of_stock': { orderId: 'order-1', reason: 'OUT_OF_STOCK', skus: ['mug'] },
  'inventory.released': {
    orderId: 'order-1',
    reservationId: 'res-1',
    items: [{ sku: 'mug', quantity: 2 }],
    reason: 'COMPENSATION',
  },
  'inventory.low_stock': { sku: 'mug', available: 1, threshold: 5 },
  'payment.initiated': { ...payment, status: 'requires_payment_method' },
  'payment.succeeded': payment,
  'payment.failed': { ...payment, reason: 'PAYMENT_FAILED', failureCode: 'generic_decline' },
  'payment.cancelled': { ...payment, reason: 'PAYMENT_TIMEOUT' },
  'payment.refunded': { ...payment, reason: 'RESERVATION_EXPIRED', refundId: 're_1' },
};

const T0 = new Date('2025-01-01T00:00:00.000Z');

function sample<S extends Subject>(type: S): CloudEvent<S> {
  const subject = type === 'inventory.low_stock' ? 'mug' : 'order-1';
  return {
    ...createEvent(type, { source: 'test', subject, data: SAMPLE_DATA[type], time: T0 }),
    sequence: formatSequence(1),
  };
}

/** What a consumer sees: the event after a trip through JSON. */
const wire = (event: unknown): unknown => JSON.parse(JSON.stringify(event));

describe('SUBJECTS', () => {
  it('every subject has a data schema and no schema lacks a subject', () => {
    expect(Object.keys(EVENT_DATA_SCHEMAS).sort()).toEqual([...SUBJECTS].sort());
  });

  it('every subject is captured by exactly one JetStream stream', () => {
    for (const subject of SUBJECTS) {
      const streams = Object.entries(STREAMS).filter(([, pattern]) =>
        subject.startsWith(pattern.replace('*', '')),
      );
      expect(streams, subject).toHaveLength(1);
    }
  });
});

describe('createEvent', () => {
  it.each(SUBJECTS)('builds a CloudEvents 1.0 envelope for %s', (type) => {
    const event = sample(type);
    expect(event).toMatchObject({
      specversion: '1.0',
      source: 'test',
      type,
      time: '2025-01-01T00:00:00.000Z',
      datacontenttype: 'application/json',
      data: SAMPLE_DATA[type],
    });
    expect(event.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(parseEvent(wire(event))).toEqual(event);
  });

  it('the subject is the orderId, or the sku for inventory.low_stock', () => {
    expect(sample('payment.succeeded').subject).toBe('order-1');
    expect(sample('inventory.low_stock').subject).toBe('mug');
  });

  it('gives every event its own id unless one is given', () => {
    const ids = new Set(Array.from({ length: 50 }, () => sample('order.created').id));
    expect(ids.size).toBe(50);
    const fixed = createEvent('payment.succeeded', {
      source: 's',
      subject: 'order-1',
      data: payment,
      id: 'evt-1',
    });
    expect(fixed.id).toBe('evt-1');
  });

  it('stamps the current time as an ISO 8601 instant when none is given', () => {
    const before = Date.now();
    const event = createEvent('payment.succeeded', { source: 's', subject: 'order-1', data: payment });
    expect(event.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(event.time)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(event.time)).toBeLessThanOrEqual(Date.now());
  });

  it('normalises currencies in data to lower case', () => {
    const event = createEvent('payment.succeeded', {
      source: 's',
      subject: 'order-1',
      data: { ...payment, currency: 'EUR' },
    });
    expect(event.data.currency).toBe('eur');
  });

  it.each([
    ['a missing orderId', 'payment.succeeded', { paymentIntentId: 'pi', amount: 1, currency: 'usd' }],
    ['a negative amount', 'payment.succeeded', { ...payment, amount: -1 }],
    ['a fractional amount', 'order.completed', { ...SAMPLE_DATA['order.completed'], amount: 1.5 }],
    [
      'an unknown status',
      'order.status_changed',
      { ...SAMPLE_DATA['order.status_changed'], status: 'SHIPPED' },
    ],
    [
      'an unknown cancellation reason',
      'order.cancelled',
      { ...SAMPLE_DATA['order.cancelled'], reason: 'BORED' },
    ],
    ['a bad sku', 'inventory.low_stock', { sku: 'no spaces', available: 1, threshold: 1 }],
    [
      'a zero quantity',
      'inventory.released',
      { ...SAMPLE_DATA['inventory.released'], items: [{ sku: 'a', quantity: 0 }] },
    ],
    ['a missing reason', 'payment.failed', payment],
  ] as const)('refuses data with %s', (_what, type, data) => {
    expect(() => createEvent(type, { source: 's', subject: 'order-1', data: data as never })).toThrow(
      ZodError,
    );
  });
});

describe('parseEvent', () => {
  const valid = wire(sample('order.created')) as Record<string, unknown>;

  it('accepts a valid event from the wire', () => {
    expect(parseEvent(valid)).toEqual(valid);
  });

  it.each(['order.shipped', 'order', '', 'ORDER.CREATED', 'toString', '__proto__'])(
    'rejects type %j',
    (type) => {
      expect(() => parseEvent({ ...valid, type })).toThrow(ZodError);
    },
  );

  it('rejects data that does not match its type, reporting the path under data', () => {
    const error = (() => {
      try {
        parseEvent({ ...valid, data: { ...SAMPLE_DATA['order.created'], items: 'mug' } });
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(ZodError);
    expect((error as ZodError).issues.map((issue) => issue.path)).toContainEqual(['data', 'items']);
  });

  it('rejects data of another type', () => {
    expect(() => parseEvent({ ...valid, type: 'payment.succeeded' })).toThrow(ZodError);
  });

  it.each([
    ['specversion', { specversion: '0.3' }],
    ['datacontenttype', { datacontenttype: 'text/plain' }],
    ['time', { time: '1 January 2025' }],
    ['id', { id: '' }],
    ['source', { source: '' }],
    ['subject', { subject: '' }],
    ['data', { data: null }],
  ])('rejects a bad %s', (_field, change) => {
    expect(() => parseEvent({ ...valid, ...change })).toThrow(ZodError);
  });

  it.each(['specversion', 'id', 'source', 'type', 'time', 'subject', 'datacontenttype', 'data'])(
    'rejects an event without %s',
    (field) => {
      const rest = { ...valid };
      delete rest[field];
      expect(() => parseEvent(rest)).toThrow(ZodError);
    },
  );

  /** Returns a valid CloudEvent or throws a ZodError: nothing else, whatever arrives. */
  function parsesOrZodError(value: unknown): void {
    let event: CloudEvent;
    try {
      event = parseEvent(value);
    } catch (error) {
      if (!(error instanceof ZodError)) throw error;
      return;
    }
    expect(CloudEventSchema.safeParse(event).success).toBe(true);
    expect(EVENT_DATA_SCHEMAS[event.type].safeParse(event.data).success).toBe(true);
  }

  it('never fails with anything but a ZodError on arbitrary values', () => {
    fc.assert(
      fc.property(fc.anything({ withObjectString: true, withNullPrototype: true }), parsesOrZodError),
      {
        numRuns: 500,
      },
    );
  });

  it('never fails with anything but a ZodError on arbitrary JSON', () => {
    fc.assert(
      fc.property(fc.json(), (text) => parsesOrZodError(JSON.parse(text))),
      { numRuns: 500 },
    );
  });

  it('never fails with anything but a ZodError on near-valid envelopes', () => {
    const field = <T>(good: fc.Arbitrary<T>) => fc.oneof(good, fc.anything(), fc.string());
    const envelope = fc.record(
      {
        specversion: field(fc.constant('1.0')),
        id: field(fc.uuid()),
        source: field(fc.string({ minLength: 1 })),
        type: fc.oneof(
          fc.constantFrom(...SUBJECTS),
          fc.string(),
          fc.constantFrom('__proto__', 'constructor'),
        ),
        time: field(fc.date({ noInvalidDate: true }).map((date) => date.toISOString())),
        subject: field(fc.string({ minLength: 1 })),
        datacontenttype: field(fc.constant('application/json')),
        data: fc.oneof(
          fc.constantFrom(...SUBJECTS).map((type) => SAMPLE_DATA[type] as unknown),
          fc.dictionary(fc.string(), fc.anything()),
          fc.anything(),
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(fc.property(envelope, parsesOrZodError), { numRuns: 1000 });
  });
});
