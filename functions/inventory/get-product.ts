import { z } from 'zod';
import { SkuSchema } from '../../events/common.ts';
import { NotFoundError } from '../../shared/errors.ts';
import { httpRoute } from '../../shared/http.ts';
import { inventoryDeps } from './deps.ts';
import { productView } from './stock.ts';

const deps = inventoryDeps();

/** GET /products/{sku} */
export const handler = httpRoute({ params: z.object({ sku: SkuSchema }) }, async ({ params }) => {
  const product = await deps.inventory.getProduct(params.sku);
  if (!product) throw new NotFoundError('PRODUCT_NOT_FOUND', `Product ${params.sku} does not exist.`);
  return { statusCode: 200, body: productView(product) };
});
