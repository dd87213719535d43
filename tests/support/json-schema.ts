/**
 * A small structural JSON Schema checker for the keywords our generated documents use (type, const,
 * enum, properties, required, additionalProperties: false, items, min/max, pattern, anyOf/oneOf and
 * local `$ref`s). Enough to catch a document drifting from what the code emits; not a full validator.
 */
type Schema = Record<string, unknown>;

export interface CheckOptions {
  /** The document local `$ref`s (`#/...`) resolve against. */
  root?: unknown;
}

function resolveRef(ref: string, root: unknown): Schema {
  if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported: ${ref}`);
  let current = root;
  for (const part of ref.slice(2).split('/')) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    current = (current as Record<string, unknown> | undefined)?.[key];
  }
  if (!current || typeof current !== 'object') throw new Error(`unresolved $ref ${ref}`);
  return current as Schema;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matchesType(value: unknown, type: unknown): boolean {
  const types = Array.isArray(type) ? type : [type];
  const actual = typeOf(value);
  return types.some((expected) => expected === actual || (expected === 'number' && actual === 'integer'));
}

/** Returns the problems found, as `path: message` lines; empty when `value` fits `schema`. */
export function checkSchema(
  schema: unknown,
  value: unknown,
  options: CheckOptions = {},
  path = '$',
): string[] {
  if (schema === true || schema === undefined) return [];
  if (schema === false) return [`${path}: no value is allowed here`];
  let s = schema as Schema;
  if (typeof s.$ref === 'string') s = { ...resolveRef(s.$ref, options.root), ...s, $ref: undefined };
  const problems: string[] = [];
  const fail = (message: string) => problems.push(`${path}: ${message}`);

  if (s.type !== undefined && !matchesType(value, s.type)) {
    fail(`expected ${JSON.stringify(s.type)}, got ${typeOf(value)}`);
    return problems;
  }
  if ('const' in s && JSON.stringify(s.const) !== JSON.stringify(value))
    fail(`expected ${JSON.stringify(s.const)}`);
  if (Array.isArray(s.enum) && !s.enum.some((option) => JSON.stringify(option) === JSON.stringify(value))) {
    fail(`${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  }
  for (const keyword of ['anyOf', 'oneOf'] as const) {
    const options_ = s[keyword];
    if (Array.isArray(options_)) {
      const passing = options_.filter(
        (option) => checkSchema(option, value, options, path).length === 0,
      ).length;
      if (passing === 0 || (keyword === 'oneOf' && passing > 1)) fail(`does not match ${keyword}`);
    }
  }
  if (typeof value === 'string') {
    if (typeof s.minLength === 'number' && value.length < s.minLength) fail(`shorter than ${s.minLength}`);
    if (typeof s.maxLength === 'number' && value.length > s.maxLength) fail(`longer than ${s.maxLength}`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value))
      fail(`does not match ${s.pattern}`);
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) fail(`below ${s.minimum}`);
    if (typeof s.maximum === 'number' && value > s.maximum) fail(`above ${s.maximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) fail(`fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) fail(`more than ${s.maxItems} items`);
    if (s.items !== undefined) {
      value.forEach((item, index) =>
        problems.push(...checkSchema(s.items, item, options, `${path}[${index}]`)),
      );
    }
  }
  if (typeOf(value) === 'object') {
    const object = value as Record<string, unknown>;
    const properties = (s.properties ?? {}) as Record<string, unknown>;
    for (const name of (s.required ?? []) as string[])
      if (!(name in object)) fail(`missing required ${name}`);
    for (const [name, item] of Object.entries(object)) {
      if (name in properties)
        problems.push(...checkSchema(properties[name], item, options, `${path}.${name}`));
      else if (s.additionalProperties === false) fail(`unexpected property ${name}`);
      else if (typeof s.additionalProperties === 'object') {
        problems.push(...checkSchema(s.additionalProperties, item, options, `${path}.${name}`));
      }
    }
  }
  return problems;
}
