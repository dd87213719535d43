import { z } from 'zod';
import { SkuSchema } from '../../events/common.ts';
import { ValidationError } from '../../shared/errors.ts';
import type { InventoryRepository } from './inventory-repository.ts';
import { productView, type ProductView } from './stock.ts';

/** `GET /products`: a page size, and the cursor of the page before. */
export const ProductListQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().min(1).max(1024).optional(),
});
export type ProductListQuery = z.infer<typeof ProductListQuerySchema>;

/*
 * The cursor is opaque to clients: base64url JSON of the last SKU of the page before. The next page
 * starts after it, so a product created meanwhile shows up in its place, and none is served twice.
 */
const CursorSchema = z.strictObject({ after: SkuSchema });
type Cursor = z.infer<typeof CursorSchema>;

const encode = (cursor: Cursor) => Buffer.from(JSON.stringify(cursor)).toString('base64url');

function decode(text: string): Cursor {
  let parsed: z.ZodSafeParseResult<Cursor> | undefined;
  try {
    parsed = CursorSchema.safeParse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
  } catch {
    // not JSON: falls through to the error below
  }
  if (!parsed?.success) {
    throw new ValidationError(
      'The cursor is not one this query returned.',
      [{ path: 'cursor', message: 'Invalid cursor' }],
      'INVALID_CURSOR',
    );
  }
  return parsed.data;
}

export interface ProductPage {
  items: ProductView[];
  nextCursor?: string;
}

/** The catalogue, a page at a time, in SKU order; no `nextCursor` on the last page. */
export const listCatalogue =
  (deps: { inventory: InventoryRepository }) =>
  async (query: ProductListQuery): Promise<ProductPage> => {
    const after = query.cursor === undefined ? undefined : decode(query.cursor).after;
    const { products, next } = await deps.inventory.listProducts(query.limit, after);
    return {
      items: products.map(productView),
      ...(next === undefined ? {} : { nextCursor: encode({ after: next }) }),
    };
  };
