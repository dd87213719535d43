import { describe, expect, it } from 'vitest';
import { DEFAULT_WEBHOOK_SECRET, localConfigFrom } from './config.ts';

describe('local configuration', () => {
  it('defaults the webhook secret to the local development one', () => {
    expect(localConfigFrom({}).STRIPE_WEBHOOK_SECRET).toBe(DEFAULT_WEBHOOK_SECRET);
  });

  it.each(['whsec_only', 'whsec_new,whsec_old', ' whsec_new , whsec_old '])(
    'takes the webhook secret %j as written, as the payment functions accept it',
    (value) => {
      expect(localConfigFrom({ STRIPE_WEBHOOK_SECRET: value }).STRIPE_WEBHOOK_SECRET).toBe(value);
    },
  );

  // The payment functions refuse these at cold start; the runtime refuses them before starting.
  it.each([
    ['a second entry that is not a webhook secret', 'whsec_new,sk_live_oops', /whsec_/],
    ['a secret with a space in it', 'whsec_a b', /whsec_/],
    ['no secret at all', ',', /at least one webhook secret/],
    ['another kind of key', 'sk_test_oops', /whsec_/],
  ])('refuses %s, naming the variable and not echoing the value', (_, value, message) => {
    let error: unknown;
    try {
      localConfigFrom({ STRIPE_WEBHOOK_SECRET: value });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(Error);
    const text = (error as Error).message;
    expect(text).toMatch(/STRIPE_WEBHOOK_SECRET: /);
    expect(text).toMatch(message);
    expect(text).not.toContain('oops');
  });
});
