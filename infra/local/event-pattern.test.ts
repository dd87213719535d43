import { describe, expect, it } from 'vitest';
import { matchesFilter, parseFilterPattern } from './event-pattern.ts';

describe('matchesFilter', () => {
  const record = {
    eventName: 'INSERT',
    eventSource: 'aws:dynamodb',
    dynamodb: {
      ApproximateCreationDateTime: 1_700_000_000,
      Keys: { pk: { S: 'ORDER#42' } },
      NewImage: {
        pk: { S: 'ORDER#42' },
        kind: { S: 'event' },
        type: { S: 'OrderPlaced' },
        amount: { N: '25' },
        tags: { SS: ['red', 'blue'] },
        flag: { BOOL: true },
        none: { NULL: true },
      },
      SizeBytes: 120,
    },
  };
  const matches = (pattern: object) => matchesFilter(JSON.stringify(pattern), record);

  it('matches exact values, any of a list, and nested objects', () => {
    expect(matches({ eventName: ['INSERT'] })).toBe(true);
    expect(matches({ eventName: ['MODIFY', 'INSERT'] })).toBe(true);
    expect(matches({ eventName: ['MODIFY'] })).toBe(false);
    expect(matches({ dynamodb: { NewImage: { kind: { S: ['event'] }, flag: { BOOL: [true] } } } })).toBe(
      true,
    );
    expect(matches({ dynamodb: { NewImage: { kind: { S: ['event'] }, flag: { BOOL: [false] } } } })).toBe(
      false,
    );
    expect(matches({ dynamodb: { NewImage: { none: { NULL: [true] } } } })).toBe(true);
    expect(matches({ dynamodb: { SizeBytes: [120] } })).toBe(true);
    // Numbers and strings are different: DynamoDB N values are strings in the record.
    expect(matches({ dynamodb: { NewImage: { amount: { N: ['25'] } } } })).toBe(true);
    expect(matches({ dynamodb: { NewImage: { amount: { N: [25] } } } })).toBe(false);
  });

  it('matches an array in the record when any element matches', () => {
    expect(matches({ dynamodb: { NewImage: { tags: { SS: ['blue'] } } } })).toBe(true);
    expect(matches({ dynamodb: { NewImage: { tags: { SS: ['green'] } } } })).toBe(false);
  });

  it('supports prefix, suffix and equals-ignore-case', () => {
    expect(matches({ dynamodb: { Keys: { pk: { S: [{ prefix: 'ORDER#' }] } } } })).toBe(true);
    expect(matches({ dynamodb: { Keys: { pk: { S: [{ prefix: 'PAYMENT#' }] } } } })).toBe(false);
    expect(matches({ dynamodb: { Keys: { pk: { S: [{ suffix: '#42' }] } } } })).toBe(true);
    expect(matches({ dynamodb: { Keys: { pk: { S: [{ suffix: '#43' }] } } } })).toBe(false);
    expect(matches({ eventName: [{ 'equals-ignore-case': 'insert' }] })).toBe(true);
  });

  it('supports anything-but with a value, a list, or a prefix', () => {
    expect(matches({ eventName: [{ 'anything-but': 'REMOVE' }] })).toBe(true);
    expect(matches({ eventName: [{ 'anything-but': ['REMOVE', 'INSERT'] }] })).toBe(false);
    expect(matches({ dynamodb: { SizeBytes: [{ 'anything-but': [1, 2] }] } })).toBe(true);
    expect(matches({ dynamodb: { SizeBytes: [{ 'anything-but': 120 }] } })).toBe(false);
    expect(matches({ dynamodb: { Keys: { pk: { S: [{ 'anything-but': { prefix: 'ORDER' } }] } } } })).toBe(
      false,
    );
    expect(matches({ dynamodb: { Keys: { pk: { S: [{ 'anything-but': { prefix: 'PAY' } }] } } } })).toBe(
      true,
    );
    // anything-but needs the field to be there.
    expect(matches({ dynamodb: { NewImage: { missing: { S: [{ 'anything-but': 'x' }] } } } })).toBe(false);
  });

  it('supports numeric comparisons and ranges on JSON numbers only', () => {
    expect(matches({ dynamodb: { SizeBytes: [{ numeric: ['>', 0, '<=', 120] }] } })).toBe(true);
    expect(matches({ dynamodb: { SizeBytes: [{ numeric: ['>', 0, '<', 120] }] } })).toBe(false);
    expect(matches({ dynamodb: { SizeBytes: [{ numeric: ['=', 120] }] } })).toBe(true);
    expect(matches({ dynamodb: { SizeBytes: [{ numeric: ['>=', 121] }] } })).toBe(false);
    expect(matches({ dynamodb: { NewImage: { amount: { N: [{ numeric: ['>', 0] }] } } } })).toBe(false);
  });

  it('supports exists on leaves, including for absent parents', () => {
    expect(matches({ dynamodb: { NewImage: { kind: { S: [{ exists: true }] } } } })).toBe(true);
    expect(matches({ dynamodb: { NewImage: { nope: { S: [{ exists: true }] } } } })).toBe(false);
    expect(matches({ dynamodb: { NewImage: { nope: { S: [{ exists: false }] } } } })).toBe(true);
    expect(matches({ dynamodb: { OldImage: { kind: { S: [{ exists: false }] } } } })).toBe(true);
    expect(matches({ dynamodb: { OldImage: { kind: { S: [{ exists: true }] } } } })).toBe(false);
    expect(matches({ dynamodb: { NewImage: { kind: { S: [{ exists: false }] } } } })).toBe(false);
  });

  it('ANDs fields, ORs values, and supports $or', () => {
    expect(matches({ eventName: ['INSERT'], dynamodb: { NewImage: { type: { S: ['OrderPlaced'] } } } })).toBe(
      true,
    );
    expect(matches({ eventName: ['INSERT'], dynamodb: { NewImage: { type: { S: ['OrderPaid'] } } } })).toBe(
      false,
    );
    expect(
      matches({ $or: [{ eventName: ['REMOVE'] }, { dynamodb: { NewImage: { kind: { S: ['event'] } } } }] }),
    ).toBe(true);
    expect(matches({ $or: [{ eventName: ['REMOVE'] }, { eventName: ['MODIFY'] }] })).toBe(false);
  });

  it('matches nothing for a field of the wrong shape', () => {
    expect(matches({ eventName: { S: ['INSERT'] } })).toBe(false);
    expect(matches({ dynamodb: { NewImage: { kind: ['event'] } } })).toBe(false);
    expect(matches({ nope: ['x'] })).toBe(false);
  });

  it('throws on invalid patterns and unknown operators', () => {
    const bad = [
      '{"eventName":"INSERT"}',
      '{"eventName":[]}',
      '{"eventName":[{"wildcard":"*"}]}',
      '{"eventName":[{"prefix":1}]}',
      '{"eventName":[{"prefix":"a","suffix":"b"}]}',
      '{"n":[{"numeric":["~",1]}]}',
      '{"n":[{"numeric":["<",1,">",0]}]}',
      '{"n":[{"exists":"yes"}]}',
      '{"n":[{"anything-but":[]}]}',
      '{"n":[{"anything-but":["a",1]}]}',
      '{"$or":{}}',
      '[]',
      'not json',
    ];
    for (const pattern of bad)
      expect(() => parseFilterPattern(pattern), pattern).toThrow(/Invalid filter pattern/);
  });

  it('rejects the EventBridge operators Lambda does not document', () => {
    const unsupported = [
      '{"n":[{"cidr":"10.0.0.0/24"}]}',
      '{"n":[{"anything-but":{"wildcard":"a*"}}]}',
      '{"n":[{"prefix":{"equals-ignore-case":"a"}}]}',
      '{"n":[{"$or":[{"prefix":"a"}]}]}',
    ];
    for (const pattern of unsupported)
      expect(() => parseFilterPattern(pattern), pattern).toThrow(/Invalid filter pattern/);
  });

  it('matches a parsed pattern as it is, the same as its JSON', () => {
    const pattern = { eventName: ['INSERT'], dynamodb: { Keys: { pk: { S: [{ prefix: 'ORDER#' }] } } } };
    const parsed = parseFilterPattern(pattern);
    expect(matchesFilter(parsed, record)).toBe(true);
    expect(matchesFilter(parsed, { ...record, eventName: 'REMOVE' })).toBe(false);
    expect(matchesFilter(parseFilterPattern(JSON.stringify(pattern)), record)).toBe(true);
  });
});
