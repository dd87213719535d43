import { httpRoute } from '../../shared/http.ts';
import { inventoryDeps } from './deps.ts';
import { preconditionFailed, preconditionOf, ProductPathSchema, productResponse } from './product-http.ts';
import { PutProductRequestSchema } from './stock.ts';

const deps = inventoryDeps();

/**
 * PUT /products/{sku}: creates or replaces a product. `available` is the stock free to sell;
 * units held by active reservations stay held (and counted in `reserved`) whatever the PUT says.
 * With `If-Match` it replaces only the version the client read (`*`: only an existing product),
 * else `412` and nothing changes.
 */
export const handler = httpRoute(
  { params: ProductPathSchema, body: PutProductRequestSchema },
  async ({ params, body, headers }) => {
    const precondition = preconditionOf(headers['if-match']);
    const result = await deps.inventory.putProduct(params.sku, body, deps.now(), precondition);
    if (result.outcome === 'VERSION_MISMATCH')
      throw preconditionFailed(params.sku, result.current, precondition);
    if (result.outcome === 'NOT_FOUND') throw preconditionFailed(params.sku, undefined, precondition);
    return productResponse(result.product);
  },
);
