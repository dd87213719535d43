/*
 * Stripe's application/x-www-form-urlencoded bodies and query strings, in its bracket notation
 * (metadata[orderId]=…, payment_method_types[0]=card, a[]=…).
 */

type FormValue = string | FormValue[] | FormObject;
export interface FormObject {
  [key: string]: FormValue;
}
interface RawNode {
  [key: string]: string | RawNode;
}

export function parseForm(encoded: string): FormObject {
  const root: RawNode = Object.create(null) as RawNode;
  for (const [key, value] of new URLSearchParams(encoded)) assignPath(root, splitKey(key), value);
  return normalizeForm(root) as FormObject;
}

/** `a[b][]` → ['a', 'b', '']; a key that is not well formed is taken literally. */
function splitKey(key: string): string[] {
  const open = key.indexOf('[');
  if (open <= 0) return [key];
  const segments = [key.slice(0, open)];
  const pattern = /\[([^[\]]*)\]/y;
  pattern.lastIndex = open;
  for (let match = pattern.exec(key); match; match = pattern.exec(key)) {
    segments.push(match[1] ?? '');
    if (pattern.lastIndex === key.length) return segments;
  }
  return [key];
}

function assignPath(root: RawNode, path: string[], value: string): void {
  let node = root;
  path.forEach((rawSegment, index) => {
    const segment = rawSegment === '' ? String(Object.keys(node).length) : rawSegment;
    if (index === path.length - 1) {
      node[segment] = value;
      return;
    }
    const child = node[segment];
    if (typeof child === 'object') {
      node = child;
    } else {
      const fresh = Object.create(null) as RawNode;
      node[segment] = fresh;
      node = fresh;
    }
  });
}

/** Objects keyed 0..n become arrays, except metadata, whose keys are the caller's. */
function normalizeForm(node: string | RawNode, key?: string): FormValue {
  if (typeof node === 'string') return node;
  const entries = Object.entries(node).map(([k, v]) => [k, normalizeForm(v, k)] as const);
  const indexed = key !== 'metadata' && entries.length > 0 && entries.every(([k]) => /^\d+$/.test(k));
  if (indexed) return entries.sort(([a], [b]) => Number(a) - Number(b)).map(([, v]) => v);
  return Object.fromEntries(entries);
}

/** Parameters in a canonical order, to compare two requests made with one idempotency key. */
export function fingerprint(value: FormValue): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(fingerprint).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${fingerprint(value[k] ?? '')}`).join(',')}}`;
}
