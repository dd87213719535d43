/**
 * The filter-pattern engine behind Lambda's event filtering (`FilterCriteria`): the subset of
 * EventBridge's event-pattern grammar that Lambda documents, matched against any JSON value.
 *
 * What it mirrors:
 * - A pattern is a JSON object whose leaves are non-empty arrays of conditions; fields are ANDed,
 *   the conditions of one array are ORed, nested objects descend into the value, and `$or` takes a
 *   non-empty list of alternative patterns.
 * - Conditions: exact values (strings, numbers, booleans, `null`; a number never equals a string),
 *   `prefix`, `suffix`, `equals-ignore-case`, `anything-but` (a value, a list of all strings or all
 *   numbers, or `{prefix|suffix|equals-ignore-case}`), `numeric` (`[op, n]` or a range
 *   `[">"|">=", n, "<"|"<=", m]`), and `exists` (true or false).
 * - Matching is on leaves, as in EventBridge: an array in the value matches if any of its scalar
 *   elements does (objects in it are matched against a nested pattern), `exists` looks for a scalar
 *   at that path, and `anything-but` needs one to be there. `numeric` only matches JSON numbers.
 * - Malformed JSON, unknown operators and bad operands throw from `parseFilterPattern`, as Lambda
 *   rejects such a pattern.
 *
 * What it does not mirror: `wildcard`, `cidr`, `anything-but` with `wildcard`, `prefix` or `suffix`
 * with `equals-ignore-case`, and `$or` anywhere but as a key of a pattern object are rejected (they
 * throw); there are no limits on a pattern's size or complexity.
 */

declare const validated: unique symbol;

/** A filter pattern `parseFilterPattern` has validated. */
export type FilterPattern = { readonly [key: string]: unknown; readonly [validated]: true };

/** A pattern object, validated or not (nested patterns inside a `FilterPattern` carry no brand). */
type PatternObject = { readonly [key: string]: unknown };

const NUMERIC_OPERATORS = new Set(['=', '<', '<=', '>', '>=']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function invalid(path: string, message: string): never {
  throw new Error(`Invalid filter pattern at ${path || '<root>'}: ${message}`);
}

function validateObject(pattern: unknown, path: string): void {
  if (!isPlainObject(pattern)) invalid(path, 'expected a JSON object');
  for (const [key, value] of Object.entries(pattern)) {
    const at = path ? `${path}.${key}` : key;
    if (key === '$or') {
      if (!Array.isArray(value) || value.length === 0) invalid(at, '$or takes a non-empty array of patterns');
      value.forEach((alternative, index) => validateObject(alternative, `${at}[${index}]`));
    } else if (Array.isArray(value)) {
      if (value.length === 0) invalid(at, 'a value list must not be empty');
      value.forEach((condition, index) => validateCondition(condition, `${at}[${index}]`));
    } else if (isPlainObject(value)) {
      validateObject(value, at);
    } else {
      invalid(at, 'values must be arrays (e.g. ["x"]) or nested objects');
    }
  }
}

function validateCondition(condition: unknown, path: string): void {
  if (condition === null || ['string', 'number', 'boolean'].includes(typeof condition)) {
    if (typeof condition === 'number' && !Number.isFinite(condition)) invalid(path, 'numbers must be finite');
    return;
  }
  if (!isPlainObject(condition)) invalid(path, 'expected a value or an operator object');
  const entries = Object.entries(condition);
  if (entries.length !== 1) invalid(path, 'an operator object has exactly one key');
  const [operator, argument] = entries[0] as [string, unknown];
  switch (operator) {
    case 'prefix':
    case 'suffix':
    case 'equals-ignore-case':
      if (typeof argument !== 'string') invalid(path, `${operator} takes a string`);
      return;
    case 'exists':
      if (typeof argument !== 'boolean') invalid(path, 'exists takes true or false');
      return;
    case 'numeric':
      validateNumeric(argument, path);
      return;
    case 'anything-but':
      validateAnythingBut(argument, path);
      return;
    default:
      invalid(path, `unsupported operator "${operator}"`);
  }
}

function validateNumeric(argument: unknown, path: string): void {
  if (!Array.isArray(argument) || (argument.length !== 2 && argument.length !== 4)) {
    invalid(path, 'numeric takes [op, n] or [op, n, op, n]');
  }
  for (let i = 0; i < argument.length; i += 2) {
    const op: unknown = argument[i];
    const n: unknown = argument[i + 1];
    if (typeof op !== 'string' || !NUMERIC_OPERATORS.has(op))
      invalid(path, `unknown numeric operator ${String(op)}`);
    if (typeof n !== 'number' || !Number.isFinite(n))
      invalid(path, 'numeric operands must be finite numbers');
  }
  if (argument.length === 4) {
    const [low, , high] = argument as [string, number, string, number];
    if (!low.startsWith('>') || !high.startsWith('<'))
      invalid(path, 'a numeric range is [">"|">=", n, "<"|"<=", m]');
  }
}

function validateAnythingBut(argument: unknown, path: string): void {
  if (typeof argument === 'string' || (typeof argument === 'number' && Number.isFinite(argument))) return;
  if (Array.isArray(argument)) {
    if (argument.length === 0) invalid(path, 'anything-but list must not be empty');
    const allStrings = argument.every((v) => typeof v === 'string');
    const allNumbers = argument.every((v) => typeof v === 'number' && Number.isFinite(v));
    if (!allStrings && !allNumbers) invalid(path, 'anything-but list must be all strings or all numbers');
    return;
  }
  if (isPlainObject(argument)) {
    const entries = Object.entries(argument);
    const [operator, value] = (entries[0] ?? []) as [string | undefined, unknown];
    if (entries.length === 1 && (operator === 'prefix' || operator === 'suffix') && typeof value === 'string')
      return;
    if (
      entries.length === 1 &&
      operator === 'equals-ignore-case' &&
      (typeof value === 'string' ||
        (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')))
    ) {
      return;
    }
    invalid(path, `unsupported anything-but operand ${JSON.stringify(argument)}`);
  }
  invalid(path, 'anything-but takes a value, a list of values, or {prefix|suffix|equals-ignore-case}');
}

/** Parses and validates a filter pattern; throws on malformed JSON, unknown operators or bad operands. */
export function parseFilterPattern(pattern: string | PatternObject): FilterPattern {
  let parsed: unknown = pattern;
  if (typeof pattern === 'string') {
    try {
      parsed = JSON.parse(pattern);
    } catch (error) {
      throw new Error(`Invalid filter pattern: not JSON (${(error as Error).message})`, { cause: error });
    }
  }
  validateObject(parsed, '');
  return parsed as FilterPattern;
}

function fieldOf(value: unknown, key: string): unknown {
  return isPlainObject(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/** Leaf values at a path: scalars (null included), or the scalar elements of an array. */
function leavesOf(value: unknown): unknown[] {
  if (value === undefined || isPlainObject(value)) return [];
  if (Array.isArray(value))
    return value.flatMap((element) => (isPlainObject(element) ? [] : leavesOf(element)));
  return [value];
}

function compareNumeric(op: string, left: number, right: number): boolean {
  switch (op) {
    case '=':
      return left === right;
    case '<':
      return left < right;
    case '<=':
      return left <= right;
    case '>':
      return left > right;
    default:
      return left >= right;
  }
}

function matchOperator(operator: string, argument: unknown, leaf: unknown): boolean {
  switch (operator) {
    case 'prefix':
      return typeof leaf === 'string' && leaf.startsWith(argument as string);
    case 'suffix':
      return typeof leaf === 'string' && leaf.endsWith(argument as string);
    case 'equals-ignore-case':
      return typeof leaf === 'string' && leaf.toLowerCase() === (argument as string).toLowerCase();
    case 'numeric': {
      if (typeof leaf !== 'number') return false;
      const terms = argument as Array<string | number>;
      for (let i = 0; i < terms.length; i += 2) {
        if (!compareNumeric(terms[i] as string, leaf, terms[i + 1] as number)) return false;
      }
      return true;
    }
    case 'anything-but': {
      if (isPlainObject(argument)) {
        const [inner, operand] = Object.entries(argument)[0] as [string, unknown];
        if (inner === 'equals-ignore-case') {
          const values = (Array.isArray(operand) ? operand : [operand]) as string[];
          return typeof leaf !== 'string' || !values.some((v) => v.toLowerCase() === leaf.toLowerCase());
        }
        return !matchOperator(inner, operand, leaf);
      }
      const excluded = Array.isArray(argument) ? argument : [argument];
      return !excluded.includes(leaf);
    }
    default:
      return false;
  }
}

function matchValueList(conditions: readonly unknown[], value: unknown): boolean {
  const leaves = leavesOf(value);
  return conditions.some((condition) => {
    if (!isPlainObject(condition)) return leaves.some((leaf) => leaf === condition);
    const [operator, argument] = Object.entries(condition)[0] as [string, unknown];
    if (operator === 'exists') return argument === true ? leaves.length > 0 : leaves.length === 0;
    return leaves.some((leaf) => matchOperator(operator, argument, leaf));
  });
}

function matchObject(pattern: PatternObject, value: unknown): boolean {
  for (const [key, sub] of Object.entries(pattern)) {
    if (key === '$or') {
      if (!(sub as PatternObject[]).some((alternative) => matchObject(alternative, value))) return false;
      continue;
    }
    const child = fieldOf(value, key);
    if (Array.isArray(sub)) {
      if (!matchValueList(sub, child)) return false;
    } else if (Array.isArray(child)) {
      const objects = child.filter(isPlainObject);
      const ok =
        objects.length === 0
          ? matchObject(sub as PatternObject, undefined)
          : objects.some((element) => matchObject(sub as PatternObject, element));
      if (!ok) return false;
    } else if (!matchObject(sub as PatternObject, child)) {
      return false;
    }
  }
  return true;
}

/**
 * Whether `value` (any JSON value, e.g. a Lambda-shaped `DynamoDBRecord`) matches one filter
 * pattern: a JSON string, parsed and validated on every call (throws if it is invalid), or a
 * `FilterPattern` from `parseFilterPattern`, matched as it is.
 */
export function matchesFilter(pattern: string | FilterPattern, value: unknown): boolean {
  return matchObject(typeof pattern === 'string' ? parseFilterPattern(pattern) : pattern, value);
}
