import { z } from 'zod';
import { SkuSchema } from '../../events/common.ts';
import { ClientError } from '../../shared/errors.ts';
import type { RouteResponse } from '../../shared/http.ts';
import { productView, versionOf, type Product, type VersionPrecondition } from './stock.ts';

/* What the product routes share at the HTTP edge: the path, the ETag and `If-Match`. */

export const ProductPathSchema = z.object({ sku: SkuSchema });

/** The product's ETag: its version as a strong entity tag (RFC 9110 §8.8.3), e.g. `"7"`. */
export const etagOf = (product: Pick<Product, 'version'>): string => `"${versionOf(product)}"`;

/** A strong ETag as `etagOf` makes them: a quoted version, without leading zeros. */
const OUR_ETAG = /^"(0|[1-9][0-9]{0,14})"$/;

/**
 * The precondition an `If-Match` header states (RFC 9110 §13.1.1): `*`, that the product exists;
 * one of our ETags, that it is at that version. Anything else (a weak tag, which strong comparison
 * never matches, a list, a tag this API never issues, an empty value) can match no product and
 * so fails as a mismatch would: 412, not 400.
 */
export function preconditionOf(ifMatch: string | undefined): VersionPrecondition | undefined {
  if (ifMatch === undefined) return undefined;
  const value = ifMatch.trim();
  if (value === '*') return 'exists';
  const tag = OUR_ETAG.exec(value);
  return tag ? { version: Number(tag[1]) } : 'unmatchable';
}

/** `200` with the product's view and its ETag. */
export const productResponse = (product: Product): RouteResponse => ({
  statusCode: 200,
  body: productView(product),
  headers: { etag: etagOf(product) },
});

/** A failed `If-Match`, saying what the client can do about it. */
export function preconditionFailed(
  sku: string,
  current: Product | undefined,
  precondition: VersionPrecondition | undefined,
): ClientError {
  const message = !current
    ? `Product ${sku} does not exist, so If-Match cannot match it.`
    : precondition === 'unmatchable'
      ? `If-Match must be * or one ETag of product ${sku}, such as its current ${etagOf(current)}.`
      : `Product ${sku} changed since it was read (its ETag is now ${etagOf(current)}); read it again.`;
  return new ClientError('PRECONDITION_FAILED', message);
}
