import { describe, expect, it } from 'vitest';
import { fingerprint, parseForm } from './form.ts';

describe('parseForm', () => {
  it('nests bracket keys and turns indexed or [] keys into arrays', () => {
    expect(
      parseForm('amount=2000&metadata[orderId]=o-1&payment_method_types[0]=card&a[]=x&a[]=y&b[c][d]=e'),
    ).toEqual({
      amount: '2000',
      metadata: { orderId: 'o-1' },
      payment_method_types: ['card'],
      a: ['x', 'y'],
      b: { c: { d: 'e' } },
    });
  });

  it('orders indexed entries by index, not by arrival', () => {
    expect(parseForm('t[1]=b&t[0]=a&t[10]=c')).toEqual({ t: ['a', 'b', 'c'] });
  });

  it('keeps numeric metadata keys as keys: they are the caller’s', () => {
    expect(parseForm('metadata[0]=zero&metadata[1]=one')).toEqual({ metadata: { '0': 'zero', '1': 'one' } });
  });

  it('takes a key that is not well formed literally', () => {
    expect(parseForm('a[b=1&[x]=2&c]d=3&e[f]g=4')).toEqual({
      'a[b': '1',
      '[x]': '2',
      'c]d': '3',
      'e[f]g': '4',
    });
  });

  it('decodes percent-escapes and plus signs', () => {
    expect(parseForm('description=caf%C3%A9+au+lait&metadata%5Bk%5D=v')).toEqual({
      description: 'café au lait',
      metadata: { k: 'v' },
    });
  });
});

describe('fingerprint', () => {
  it('is the same for the same parameters in another order', () => {
    expect(fingerprint(parseForm('a=1&metadata[x]=1&metadata[y]=2'))).toBe(
      fingerprint(parseForm('metadata[y]=2&metadata[x]=1&a=1')),
    );
  });

  it('tells apart values, array order and nesting', () => {
    const prints = ['a=1', 'a=2', 'a[0]=1&a[1]=2', 'a[0]=2&a[1]=1', 'a[b]=1', 'a=1&b=1'].map((form) =>
      fingerprint(parseForm(form)),
    );
    expect(new Set(prints).size).toBe(prints.length);
  });
});
