import { z } from 'zod';
import { SkuSchema } from '../../events/common.ts';
import { httpRoute } from '../../shared/http.ts';
import { inventoryDeps } from './deps.ts';
import { productView, PutProductRequestSchema } from './stock.ts';

const deps = inventoryDeps();

/**
 * PUT /products/{sku}: creates or replaces a product. `available` is the stock free to sell;
 * units held by active reservations stay held (and counted in `reserved`) whatever the PUT says.
 */
export const handler = httpRoute(
  { params: z.object({ sku: SkuSchema }), body: PutProductRequestSchema },
  async ({ params, body }) => ({
    statusCode: 200,
    body: productView((await deps.inventory.putProduct(params.sku, body, deps.now())).product),
  }),
);
