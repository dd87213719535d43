/**
 * Fault injection for the local runtime (`LOCAL_FAULTS`, CONTRACT §1): faults that AWS or Stripe
 * really produce, injected by the glue (the Lambda host and the Stripe emulator), never by the
 * handlers, so that tests can prove the saga survives them.
 *
 * `LOCAL_FAULTS` is comma-separated `name=value` pairs. Rates are probabilities from 0 to 1;
 * `stripe.slow` is whole milliseconds, `webhook.delay` seconds. Every rate fault draws from its own
 * stream of a small seeded PRNG (`LOCAL_FAULTS_SEED`), so the n-th roll of a fault has the same
 * outcome in every run with that seed; with concurrent orders, which request is the n-th can still
 * differ between runs.
 */
import { randomInt } from 'node:crypto';
import { ConfigError } from '../../shared/errors.ts';

export const FAULT_NAMES = [
  'lambda.throttle',
  'lambda.lost-response',
  'stripe.error',
  'stripe.lost-response',
  'stripe.slow',
  'webhook.delay',
  'webhook.drop',
] as const;

export type FaultName = (typeof FAULT_NAMES)[number];
/** Faults that fire now and then, with a probability. */
export type RateFault =
  'lambda.throttle' | 'lambda.lost-response' | 'stripe.error' | 'stripe.lost-response' | 'webhook.drop';
/** Faults that apply every time, with a size. */
export type DelayFault = 'stripe.slow' | 'webhook.delay';
export type FaultSpec = Partial<Record<FaultName, number>>;

/** What a fault fired on; each injection point fills in what it knows, and the log line shows it. */
export interface FaultContext {
  /** The saga state whose task invoked the function. */
  stateName?: string;
  executionArn?: string;
  functionName?: string;
  /** A Stripe API request, e.g. `POST /v1/payment_intents/pi_…/confirm`. */
  request?: string;
  eventType?: string;
  eventId?: string;
  orderId?: string;
}

export interface FaultInjector {
  readonly seed: number;
  /** The faults in force now. */
  spec(): FaultSpec;
  /** Replaces the faults in force (tests change them while running); validated like LOCAL_FAULTS. */
  set(spec: FaultSpec): void;
  /** True when the rate fault fires now; then counts it and logs one line naming it and the context. */
  roll(name: RateFault, context: FaultContext): boolean;
  /** The fault's size as configured: `stripe.slow` in ms, `webhook.delay` in s; 0 when off. */
  value(name: DelayFault): number;
  /**
   * The delay to apply now, in milliseconds (0 when off or filtered out); a delay > 0 is counted and
   * logged like a rate fault that fired.
   */
  delayMs(name: DelayFault, context: FaultContext): number;
  /** How many faults were injected so far, by kind. */
  counts(): Record<FaultName, number>;
  /** e.g. `lambda.throttle=0.1, webhook.drop=0.2 (seed 42)`, or `none`. */
  describe(): string;
}

export interface FaultInjectorOptions {
  spec: FaultSpec;
  seed: number;
  log: (line: string) => void;
  /** Scopes faults: a fault applies only where this returns true (e.g. only the ReserveStock state). */
  filter?: (name: FaultName, context: FaultContext) => boolean;
}

const RATE_FAULTS: ReadonlySet<FaultName> = new Set<RateFault>([
  'lambda.throttle',
  'lambda.lost-response',
  'stripe.error',
  'stripe.lost-response',
  'webhook.drop',
]);
/** Node's timers take at most 2^31-1 ms; these caps keep a typo from becoming a silent 1 ms. */
const MAX_SLOW_MS = 600_000;
const MAX_DELAY_SECONDS = 86_400;
export const MAX_FAULT_SEED = 0xffff_ffff;

const isFaultName = (name: string): name is FaultName => (FAULT_NAMES as readonly string[]).includes(name);

/** What a value must look like, as the end of an error sentence; undefined when `value` is fine. */
function problemWith(name: FaultName, value: number): string | undefined {
  if (RATE_FAULTS.has(name)) {
    return Number.isFinite(value) && value >= 0 && value <= 1
      ? undefined
      : `${name} takes a rate, a probability from 0 to 1 (e.g. ${name}=0.1)`;
  }
  if (name === 'stripe.slow') {
    return Number.isInteger(value) && value >= 0 && value <= MAX_SLOW_MS
      ? undefined
      : `stripe.slow takes whole milliseconds from 0 to ${MAX_SLOW_MS} (e.g. stripe.slow=250)`;
  }
  return Number.isFinite(value) && value >= 0 && value <= MAX_DELAY_SECONDS
    ? undefined
    : `webhook.delay takes seconds from 0 to ${MAX_DELAY_SECONDS} (e.g. webhook.delay=45 or 0.5)`;
}

const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

/**
 * Parses `LOCAL_FAULTS`. Undefined or blank: no faults. Throws a ConfigError with one sentence naming
 * the offending pair and what is allowed: an unknown name, a repeated name, a pair without `=`, or a
 * value out of range.
 */
export function parseFaults(text: string | undefined): FaultSpec {
  const spec: FaultSpec = {};
  if (text === undefined || text.trim() === '') return spec;
  for (const rawPair of text.split(',')) {
    const pair = rawPair.trim();
    if (pair === '') {
      throw new ConfigError(`'${text}' has an empty entry: separate name=value pairs with single commas.`);
    }
    const equals = pair.indexOf('=');
    if (equals < 0) {
      throw new ConfigError(
        `'${pair}' has no value: write name=value, e.g. ${isFaultName(pair) ? exampleFor(pair) : 'webhook.drop=0.2'}.`,
      );
    }
    const name = pair.slice(0, equals).trim();
    const rawValue = pair.slice(equals + 1).trim();
    if (!isFaultName(name)) {
      throw new ConfigError(`'${pair}' names no fault: the faults are ${FAULT_NAMES.join(', ')}.`);
    }
    if (spec[name] !== undefined) {
      throw new ConfigError(`'${pair}' sets ${name} a second time: give each fault once.`);
    }
    const value = DECIMAL.test(rawValue) ? Number(rawValue) : Number.NaN;
    const problem = problemWith(name, value);
    if (problem) throw new ConfigError(`'${pair}' is not allowed: ${problem}.`);
    spec[name] = value;
  }
  return spec;
}

function exampleFor(name: FaultName): string {
  if (name === 'stripe.slow') return 'stripe.slow=250';
  if (name === 'webhook.delay') return 'webhook.delay=45';
  return `${name}=0.1`;
}

/** Parses `LOCAL_FAULTS_SEED`: an integer from 0 to 4294967295, or undefined when unset or blank. */
export function parseFaultSeed(text: string | undefined): number | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  const trimmed = text.trim();
  const seed = /^\d+$/.test(trimmed) ? Number(trimmed) : Number.NaN;
  if (!(seed <= MAX_FAULT_SEED)) {
    throw new ConfigError(`'${text}' is not a seed: use an integer from 0 to ${MAX_FAULT_SEED}.`);
  }
  return seed;
}

/** A seed for a run that did not ask for one; print it so that the run can be replayed. */
export function randomFaultSeed(): number {
  return randomInt(0, 2 ** 32 - 1);
}

/** `lambda.throttle=0.1, webhook.drop=0.2`, in FAULT_NAMES order; `none` when nothing is set. */
export function describeFaults(spec: FaultSpec): string {
  const set = FAULT_NAMES.filter((name) => spec[name] !== undefined).map((name) => `${name}=${spec[name]}`);
  return set.length === 0 ? 'none' : set.join(', ');
}

/** mulberry32: 32 bits of state, good enough to decide faults, and the same on every platform. */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** FNV-1a of the fault's name: each fault gets its own stream, so one fault's rolls never shift another's. */
function streamSeed(seed: number, name: FaultName): number {
  let hash = 0x811c9dc5;
  for (const char of name) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193);
  return (hash ^ seed) >>> 0;
}

function validated(spec: FaultSpec): FaultSpec {
  const copy: FaultSpec = {};
  for (const [name, value] of Object.entries(spec)) {
    if (value === undefined) continue;
    if (!isFaultName(name)) {
      throw new ConfigError(`'${name}' names no fault: the faults are ${FAULT_NAMES.join(', ')}.`);
    }
    const problem = problemWith(name, value);
    if (problem) throw new ConfigError(`'${name}=${value}' is not allowed: ${problem}.`);
    copy[name] = value;
  }
  return copy;
}

function executionName(arn: string): string {
  return arn.slice(arn.lastIndexOf(':') + 1);
}

/** The part of the log line after `fault <name>: `. */
function describeContext(context: FaultContext): string {
  if (context.request) return context.request;
  if (context.eventType || context.eventId) {
    const event = [context.eventType, context.eventId].filter(Boolean).join(' ');
    return context.orderId ? `${event} (order ${context.orderId})` : event;
  }
  const parts = [context.stateName ?? context.functionName ?? 'invocation'];
  if (context.executionArn) parts.push(`(execution ${executionName(context.executionArn)})`);
  return parts.join(' ');
}

export function faultInjector(options: FaultInjectorOptions): FaultInjector {
  const { seed, log, filter } = options;
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_FAULT_SEED) {
    throw new ConfigError(`fault seed ${seed} is not an integer from 0 to ${MAX_FAULT_SEED}.`);
  }
  let spec = validated(options.spec);
  const streams = new Map(FAULT_NAMES.map((name) => [name, mulberry32(streamSeed(seed, name))]));
  const injected = Object.fromEntries(FAULT_NAMES.map((name) => [name, 0])) as Record<FaultName, number>;

  const record = (name: FaultName, detail: string) => {
    injected[name] += 1;
    log(`fault ${name}: ${detail}`);
  };

  return {
    seed,
    spec: () => ({ ...spec }),
    set(next) {
      spec = validated(next);
    },
    roll(name, context) {
      const rate = spec[name];
      if (!rate) return false;
      if (filter && !filter(name, context)) return false;
      // Drawn only when the fault is in force here, so scoping a fault keeps its sequence replayable.
      const fires = streams.get(name)!() < rate;
      if (fires) record(name, describeContext(context));
      return fires;
    },
    value: (name) => spec[name] ?? 0,
    delayMs(name, context) {
      const size = spec[name];
      if (!size) return 0;
      if (filter && !filter(name, context)) return 0;
      const ms = name === 'webhook.delay' ? Math.round(size * 1000) : size;
      record(name, `${describeContext(context)} (+${ms} ms)`);
      return ms;
    },
    counts: () => ({ ...injected }),
    describe() {
      const faults = describeFaults(spec);
      return faults === 'none' ? 'none' : `${faults} (seed ${seed})`;
    },
  };
}

/** An injector with nothing in force: what the glue uses when it was given none. */
export function noFaults(): FaultInjector {
  return faultInjector({ spec: {}, seed: 0, log: () => {} });
}
