import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors.ts';
import {
  FAULT_NAMES,
  describeFaults,
  faultInjector,
  mulberry32,
  parseFaultSeed,
  parseFaults,
  type FaultContext,
  type FaultInjectorOptions,
  type RateFault,
} from './faults.ts';

function refusal(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

function injector(options: Partial<FaultInjectorOptions> = {}) {
  const lines: string[] = [];
  const faults = faultInjector({ spec: {}, seed: 42, log: (line) => lines.push(line), ...options });
  return { faults, lines };
}

const rolls = (name: RateFault, count: number, options: Partial<FaultInjectorOptions>) => {
  const { faults } = injector(options);
  return Array.from({ length: count }, () => faults.roll(name, { stateName: 'ReserveStock' }));
};

describe('parsing LOCAL_FAULTS', () => {
  it('reads every fault, with spaces around pairs, names and values', () => {
    expect(
      parseFaults(
        'lambda.throttle=0.1, lambda.lost-response=0.05 ,stripe.error=1,stripe.lost-response = 0,' +
          'stripe.slow=250, webhook.delay=1.5, webhook.drop=.2',
      ),
    ).toEqual({
      'lambda.throttle': 0.1,
      'lambda.lost-response': 0.05,
      'stripe.error': 1,
      'stripe.lost-response': 0,
      'stripe.slow': 250,
      'webhook.delay': 1.5,
      'webhook.drop': 0.2,
    });
  });

  it.each([undefined, '', '   '])('takes %j as no faults', (text) => {
    expect(parseFaults(text)).toEqual({});
  });

  it.each([
    [
      'an unknown name',
      'lambda.thottle=0.1',
      /'lambda\.thottle=0\.1' names no fault: the faults are lambda\.throttle, /,
    ],
    ['a name in the wrong case', 'Webhook.Drop=0.1', /'Webhook\.Drop=0\.1' names no fault/],
    [
      'a pair without =',
      'webhook.drop',
      /'webhook\.drop' has no value: write name=value, e\.g\. webhook\.drop=0\.1/,
    ],
    [
      'a duplicate',
      'webhook.drop=0.1,webhook.drop=0.2',
      /'webhook\.drop=0\.2' sets webhook\.drop a second time/,
    ],
    ['an empty entry', 'webhook.drop=0.1,,stripe.error=0.1', /has an empty entry/],
    [
      'a rate above 1',
      'lambda.throttle=1.5',
      /'lambda\.throttle=1\.5' is not allowed: .*probability from 0 to 1/,
    ],
    [
      'a negative rate',
      'stripe.error=-0.1',
      /'stripe\.error=-0\.1' is not allowed: .*probability from 0 to 1/,
    ],
    ['a rate that is not a number', 'webhook.drop=half', /'webhook\.drop=half' is not allowed/],
    ['an empty value', 'stripe.lost-response=', /'stripe\.lost-response=' is not allowed/],
    ['an exponent', 'lambda.lost-response=1e-1', /is not allowed/],
    [
      'fractional milliseconds',
      'stripe.slow=2.5',
      /'stripe\.slow=2\.5' is not allowed: stripe\.slow takes whole milliseconds/,
    ],
    ['too many milliseconds', 'stripe.slow=600001', /from 0 to 600000/],
    [
      'negative seconds',
      'webhook.delay=-1',
      /'webhook\.delay=-1' is not allowed: webhook\.delay takes seconds/,
    ],
    ['seconds over a day', 'webhook.delay=86401', /from 0 to 86400/],
  ])('refuses %s with one sentence naming the pair', (_, text, message) => {
    const error = refusal(() => parseFaults(text));
    expect(error.message).toMatch(message);
    expect(error.message.split('\n')).toHaveLength(1);
    expect(error.message).toMatch(/\.$/);
  });

  it.each([
    ['42', 42],
    [' 0 ', 0],
    ['4294967295', 4_294_967_295],
    [undefined, undefined],
    ['', undefined],
  ])('reads the seed %j', (text, seed) => {
    expect(parseFaultSeed(text)).toBe(seed);
  });

  it.each(['-1', '1.5', '4294967296', 'abc', '0x10'])('refuses the seed %j', (text) => {
    expect(refusal(() => parseFaultSeed(text)).message).toMatch(
      /is not a seed: use an integer from 0 to 4294967295/,
    );
  });

  it('describes the faults in a fixed order, or none', () => {
    expect(describeFaults({ 'webhook.drop': 0.2, 'lambda.throttle': 0.1 })).toBe(
      'lambda.throttle=0.1, webhook.drop=0.2',
    );
    expect(describeFaults({})).toBe('none');
  });
});

describe('the fault injector', () => {
  it('replays: the same seed gives the same sequence, another seed another one', () => {
    const spec = { 'lambda.throttle': 0.5 };
    const first = rolls('lambda.throttle', 200, { spec, seed: 7 });
    expect(rolls('lambda.throttle', 200, { spec, seed: 7 })).toEqual(first);
    expect(rolls('lambda.throttle', 200, { spec, seed: 8 })).not.toEqual(first);
  });

  it("keeps each fault's sequence apart: rolling one never shifts another", () => {
    const spec = { 'lambda.throttle': 0.5, 'webhook.drop': 0.5 };
    const alone = rolls('webhook.drop', 100, { spec, seed: 3 });
    const { faults } = injector({ spec, seed: 3 });
    const interleaved = Array.from({ length: 100 }, () => {
      faults.roll('lambda.throttle', {});
      return faults.roll('webhook.drop', {});
    });
    expect(interleaved).toEqual(alone);
  });

  it('fires at about the configured rate; 0 never, 1 always', () => {
    const fired = rolls('stripe.error', 10_000, { spec: { 'stripe.error': 0.1 }, seed: 1 }).filter(Boolean);
    expect(fired.length).toBeGreaterThan(850);
    expect(fired.length).toBeLessThan(1150);
    expect(rolls('stripe.error', 500, { spec: { 'stripe.error': 0 } }).some(Boolean)).toBe(false);
    expect(rolls('stripe.error', 500, { spec: { 'stripe.error': 1 } }).every(Boolean)).toBe(true);
    expect(rolls('stripe.error', 500, { spec: {} }).some(Boolean)).toBe(false);
  });

  it('mulberry32 draws in [0, 1) and repeats for a seed', () => {
    const a = mulberry32(123);
    const b = mulberry32(123);
    for (let i = 0; i < 1000; i++) {
      const value = a();
      expect(value).toBeGreaterThanOrEqual(0);
      expect(value).toBeLessThan(1);
      expect(b()).toBe(value);
    }
  });

  it('logs one line per injected fault, with the word fault, its name and the context', () => {
    const { faults, lines } = injector({
      spec: { 'lambda.throttle': 1, 'stripe.lost-response': 1, 'webhook.drop': 1, 'lambda.lost-response': 0 },
    });
    faults.roll('lambda.throttle', {
      stateName: 'ReserveStock',
      functionName: 'ReserveStockFunction',
      executionArn: 'arn:aws:states:us-east-1:000000000000:execution:OrderSaga:order-1',
    });
    faults.roll('lambda.lost-response', { stateName: 'ReserveStock' });
    faults.roll('stripe.lost-response', { request: 'POST /v1/payment_intents/pi_1/confirm' });
    faults.roll('webhook.drop', {
      eventType: 'payment_intent.succeeded',
      eventId: 'evt_1',
      orderId: 'order-1',
    });
    expect(lines).toEqual([
      'fault lambda.throttle: ReserveStock (execution order-1)',
      'fault stripe.lost-response: POST /v1/payment_intents/pi_1/confirm',
      'fault webhook.drop: payment_intent.succeeded evt_1 (order order-1)',
    ]);
  });

  it('gives the delays in milliseconds, counts and logs them, and reads their configured size', () => {
    const { faults, lines } = injector({ spec: { 'stripe.slow': 250, 'webhook.delay': 1.5 } });
    expect(faults.value('stripe.slow')).toBe(250);
    expect(faults.value('webhook.delay')).toBe(1.5);
    expect(faults.delayMs('stripe.slow', { request: 'GET /v1/payment_intents/pi_1' })).toBe(250);
    expect(faults.delayMs('webhook.delay', { eventType: 'payment_intent.created', eventId: 'evt_2' })).toBe(
      1500,
    );
    expect(lines).toEqual([
      'fault stripe.slow: GET /v1/payment_intents/pi_1 (+250 ms)',
      'fault webhook.delay: payment_intent.created evt_2 (+1500 ms)',
    ]);
    expect(faults.counts()).toMatchObject({ 'stripe.slow': 1, 'webhook.delay': 1 });
    const none = injector().faults;
    expect(none.value('stripe.slow')).toBe(0);
    expect(none.delayMs('webhook.delay', {})).toBe(0);
  });

  it('counts what it injected, by kind, every kind present', () => {
    const { faults } = injector({ spec: { 'webhook.drop': 1 } });
    faults.roll('webhook.drop', {});
    faults.roll('webhook.drop', {});
    faults.roll('stripe.error', {});
    expect(Object.keys(faults.counts()).sort()).toEqual([...FAULT_NAMES].sort());
    expect(faults.counts()).toMatchObject({ 'webhook.drop': 2, 'stripe.error': 0 });
  });

  it('scopes faults with a filter, without drawing for the calls it excludes', () => {
    const onlyReserveStock = (_: unknown, context: FaultContext) => context.stateName === 'ReserveStock';
    const { faults, lines } = injector({ spec: { 'lambda.throttle': 1 }, filter: onlyReserveStock });
    expect(faults.roll('lambda.throttle', { stateName: 'CreatePayment' })).toBe(false);
    expect(faults.roll('lambda.throttle', { stateName: 'ReserveStock' })).toBe(true);
    expect(lines).toEqual(['fault lambda.throttle: ReserveStock']);

    const spec = { 'lambda.throttle': 0.5 };
    const plain = rolls('lambda.throttle', 50, { spec, seed: 9 });
    const scoped = injector({ spec, seed: 9, filter: onlyReserveStock }).faults;
    const outcomes = Array.from({ length: 50 }, () => {
      scoped.roll('lambda.throttle', { stateName: 'CreatePayment' });
      return scoped.roll('lambda.throttle', { stateName: 'ReserveStock' });
    });
    expect(outcomes).toEqual(plain);
  });

  it('changes faults while running, validating them; describes what is in force with the seed', () => {
    const { faults } = injector({ seed: 42 });
    expect(faults.describe()).toBe('none');
    expect(faults.roll('stripe.error', {})).toBe(false);
    faults.set({ 'stripe.error': 1, 'webhook.drop': 0.2 });
    expect(faults.spec()).toEqual({ 'stripe.error': 1, 'webhook.drop': 0.2 });
    expect(faults.describe()).toBe('stripe.error=1, webhook.drop=0.2 (seed 42)');
    expect(faults.roll('stripe.error', {})).toBe(true);
    expect(() => faults.set({ 'stripe.error': 2 })).toThrow(ConfigError);
    expect(() => faults.set({ 'stripe.slow': 1.5 })).toThrow(/whole milliseconds/);
    expect(faults.spec()).toEqual({ 'stripe.error': 1, 'webhook.drop': 0.2 });
    faults.set({});
    expect(faults.describe()).toBe('none');
  });

  it('refuses a seed outside 0..4294967295', () => {
    expect(() => injector({ seed: -1 })).toThrow(ConfigError);
    expect(() => injector({ seed: 1.5 })).toThrow(ConfigError);
  });
});
