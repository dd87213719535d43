import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { etagOf, preconditionOf } from './product-http.ts';
import { adjustmentHash, AdjustStockRequestSchema } from './stock.ts';

describe('the ETag and If-Match', () => {
  it("is the product's version, quoted; a product from before versions is at 0", () => {
    expect(etagOf({ version: 7 })).toBe('"7"');
    expect(etagOf({})).toBe('"0"');
  });

  it('reads `*` and our own ETags; everything else matches no product', () => {
    expect(preconditionOf(undefined)).toBeUndefined();
    expect(preconditionOf('*')).toBe('exists');
    expect(preconditionOf(' "12" ')).toEqual({ version: 12 });
    for (const header of ['W/"12"', '"12", "13"', '12', '"012"', '"-1"', '"1.5"', '"a"', '""', '', '"12']) {
      expect(preconditionOf(header), header).toBe('unmatchable');
    }
  });

  it('gives back the version of every ETag it makes', () => {
    fc.assert(
      fc.property(fc.nat(), (version) => {
        expect(preconditionOf(etagOf({ version }))).toEqual({ version });
      }),
    );
  });

  it('never throws, and names a version only for one quoted number', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (header) => {
        const precondition = preconditionOf(header);
        if (typeof precondition === 'object') {
          expect(header.trim()).toBe(etagOf(precondition));
          expect(Number.isSafeInteger(precondition.version)).toBe(true);
        }
      }),
    );
  });
});

describe('a stock adjustment request', () => {
  const parse = (body: unknown) => AdjustStockRequestSchema.safeParse(body).success;

  it('takes a non-zero whole delta within a billion either way, and an optional reason of 1-200 characters', () => {
    for (const body of [
      { delta: 1 },
      { delta: -1_000_000_000 },
      { delta: 1_000_000_000, reason: 'x'.repeat(200) },
    ]) {
      expect(parse(body), JSON.stringify(body)).toBe(true);
    }
    for (const body of [
      { delta: 0 },
      { delta: -0 },
      { delta: 2.5 },
      { delta: 1_000_000_001 },
      { delta: '3' },
      { delta: 1, reason: '' },
      { delta: 1, reason: 'x'.repeat(201) },
      { delta: 1, extra: true },
      {},
      null,
    ]) {
      expect(parse(body), JSON.stringify(body)).toBe(false);
    }
  });

  it('is identified by its delta and reason, not by the order of its fields', () => {
    expect(adjustmentHash({ delta: 5, reason: 'r' })).toBe(
      adjustmentHash(AdjustStockRequestSchema.parse(JSON.parse('{"reason":"r","delta":5}'))),
    );
    expect(adjustmentHash({ delta: 5 })).not.toBe(adjustmentHash({ delta: 5, reason: 'r' }));
    expect(adjustmentHash({ delta: 5 })).not.toBe(adjustmentHash({ delta: -5 }));
  });
});
