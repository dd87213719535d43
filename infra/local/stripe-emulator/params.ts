import { STRIPE_MAXIMUM_CHARGE } from '../../../functions/payments/stripe-limits.ts';
import { invalidRequest, resourceMissing } from './errors.ts';
import type { FormObject } from './form.ts';

/* Typed parameters out of a parsed form, refused as Stripe refuses them, naming the param. */

const MAX_AMOUNT = STRIPE_MAXIMUM_CHARGE;

export function optionalString(params: FormObject, name: string): string | undefined {
  const value = params[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string')
    throw invalidRequest(`Invalid string: ${JSON.stringify(value)}`, { param: name });
  return value;
}

function optionalInteger(params: FormObject, name: string): number | undefined {
  const value = optionalString(params, name);
  if (value === undefined) return undefined;
  if (!/^-?\d+$/.test(value)) {
    throw invalidRequest(`Invalid integer: ${value}`, { param: name, code: 'parameter_invalid_integer' });
  }
  return Number(value);
}

/** A positive integer amount; the caller checks the upper limit. */
export function optionalPositiveAmount(params: FormObject, name: string): number | undefined {
  const amount = optionalInteger(params, name);
  if (amount === undefined) return undefined;
  if (amount < 1) {
    throw invalidRequest('This value must be greater than or equal to 1.', {
      param: name,
      code: 'parameter_invalid_integer',
    });
  }
  return amount;
}

export function optionalAmount(params: FormObject, name = 'amount'): number | undefined {
  const amount = optionalPositiveAmount(params, name);
  if (amount !== undefined && amount > MAX_AMOUNT) {
    throw invalidRequest(`This value must be less than or equal to ${MAX_AMOUNT}.`, {
      param: name,
      code: 'parameter_invalid_integer',
    });
  }
  return amount;
}

/**
 * One page of a list, Stripe's way: `items` newest first; `limit` 1–100 (default 10); `starting_after`
 * pages toward older objects, `ending_before` toward newer ones (the page still newest first).
 */
export function listPage<T extends { id: string }>(
  items: readonly T[],
  params: FormObject,
  kind: string,
  url: string,
) {
  const limit = optionalInteger(params, 'limit') ?? 10;
  if (limit < 1 || limit > 100) {
    throw invalidRequest(
      `This value must be greater than or equal to 1 and less than or equal to 100 (it currently is '${limit}').`,
      { param: 'limit' },
    );
  }
  const after = optionalString(params, 'starting_after');
  const before = optionalString(params, 'ending_before');
  if (after !== undefined && before !== undefined) {
    throw invalidRequest('You may only specify one of these parameters: ending_before, starting_after.', {
      param: 'ending_before',
    });
  }
  const position = (id: string, param: string) => {
    const index = items.findIndex((item) => item.id === id);
    if (index < 0) throw resourceMissing(kind, id, param, 400);
    return index;
  };
  if (before !== undefined) {
    const newer = items.slice(0, position(before, 'ending_before'));
    return {
      object: 'list',
      data: newer.slice(Math.max(0, newer.length - limit)),
      has_more: newer.length > limit,
      url,
    };
  }
  const older = after === undefined ? items : items.slice(position(after, 'starting_after') + 1);
  return { object: 'list', data: older.slice(0, limit), has_more: older.length > limit, url };
}

export function optionalBoolean(params: FormObject, name: string): boolean | undefined {
  const value = optionalString(params, name);
  if (value === undefined) return undefined;
  if (value !== 'true' && value !== 'false')
    throw invalidRequest(`Invalid boolean: ${value}`, { param: name });
  return value === 'true';
}

export function optionalChoice(
  params: FormObject,
  name: string,
  allowed: readonly string[],
): string | undefined {
  const value = optionalString(params, name);
  if (value === undefined || value === '') return undefined;
  if (!allowed.includes(value)) {
    throw invalidRequest(`Invalid ${name}: must be one of ${allowed.join(', ')}`, { param: name });
  }
  return value;
}

export function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) {
    throw invalidRequest(`Missing required param: ${name}.`, { param: name, code: 'parameter_missing' });
  }
  return value;
}

const CURRENCIES = new Set(Intl.supportedValuesOf('currency').map((code) => code.toLowerCase()));

export function optionalCurrency(params: FormObject): string | undefined {
  const value = optionalString(params, 'currency')?.toLowerCase();
  if (value === undefined) return undefined;
  if (!CURRENCIES.has(value)) throw invalidRequest(`Invalid currency: ${value}.`, { param: 'currency' });
  return value;
}

export function optionalStringArray(params: FormObject, name: string): string[] | undefined {
  const value = params[name];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw invalidRequest(`Invalid array`, { param: name });
  }
  return value as string[];
}
