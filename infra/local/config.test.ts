import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.ts';
import { DEFAULT_WEBHOOK_SECRET, localConfigFrom, natsServerAddresses } from './config.ts';

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

describe('fault injection settings', () => {
  it('has no faults and no seed by default', () => {
    const config = localConfigFrom({});
    expect(config.LOCAL_FAULTS).toEqual({});
    expect(config.LOCAL_FAULTS_SEED).toBeUndefined();
  });

  it('parses LOCAL_FAULTS and LOCAL_FAULTS_SEED', () => {
    const config = localConfigFrom({
      LOCAL_FAULTS: 'lambda.throttle=0.1, webhook.drop=0.2, stripe.slow=100',
      LOCAL_FAULTS_SEED: '42',
    });
    expect(config.LOCAL_FAULTS).toEqual({ 'lambda.throttle': 0.1, 'webhook.drop': 0.2, 'stripe.slow': 100 });
    expect(config.LOCAL_FAULTS_SEED).toBe(42);
  });

  it.each([
    ['LOCAL_FAULTS', 'lambda.thottle=0.1', /LOCAL_FAULTS: 'lambda\.thottle=0\.1' names no fault/],
    ['LOCAL_FAULTS', 'webhook.drop=2', /LOCAL_FAULTS: 'webhook\.drop=2' is not allowed: .*from 0 to 1/],
    ['LOCAL_FAULTS', 'stripe.error=0.1,stripe.error=0.2', /LOCAL_FAULTS: .*a second time/],
    ['LOCAL_FAULTS', 'stripe.slow', /LOCAL_FAULTS: 'stripe\.slow' has no value/],
    ['LOCAL_FAULTS_SEED', 'seven', /LOCAL_FAULTS_SEED: 'seven' is not a seed/],
  ])('refuses a bad %s (%j) before the start, naming the variable', (variable, value, message) => {
    expect(() => localConfigFrom({ [variable]: value })).toThrow(ConfigError);
    expect(() => localConfigFrom({ [variable]: value })).toThrow(message);
  });
});

describe('NATS settings', () => {
  it('leaves existing streams alone unless NATS_UPDATE_STREAMS says otherwise', () => {
    expect(localConfigFrom({}).NATS_UPDATE_STREAMS).toBe(false);
    expect(localConfigFrom({ NATS_UPDATE_STREAMS: 'true' }).NATS_UPDATE_STREAMS).toBe(true);
    expect(() => localConfigFrom({ NATS_UPDATE_STREAMS: 'always' })).toThrow(/NATS_UPDATE_STREAMS: /);
  });

  it.each([
    'nats://127.0.0.1:4222',
    'nats://a:4222,nats://b:4223',
    '127.0.0.1:4222',
    'tls://nats.example.com',
  ])('takes NATS_URL %j', (value) => {
    expect(localConfigFrom({ NATS_URL: value }).NATS_URL).toBe(value);
  });

  it.each(['http://127.0.0.1:4222', 'nats://', 'nats://a:4222,,nats://b:4222'])(
    'refuses NATS_URL %j',
    (value) => {
      expect(() => localConfigFrom({ NATS_URL: value })).toThrow(/NATS_URL: must be nats:\/\/host:port/);
    },
  );

  it('reads the servers out of NATS_URL, with the default port', () => {
    expect(natsServerAddresses('nats://a:4223, b')).toEqual([
      { url: 'nats://a:4223', host: 'a', port: 4223 },
      { url: 'b', host: 'b', port: 4222 },
    ]);
  });
});
