import { ClientError } from '../../shared/errors.ts';
import { httpRoute } from '../../shared/http.ts';
import { inventoryDeps } from './deps.ts';
import { ProductPathSchema, productResponse } from './product-http.ts';

const deps = inventoryDeps();

/** GET /products/{sku} → 200 with the product and its `ETag`. */
export const handler = httpRoute({ params: ProductPathSchema }, async ({ params }) => {
  const product = await deps.inventory.getProduct(params.sku);
  if (!product) throw new ClientError('PRODUCT_NOT_FOUND', `Product ${params.sku} does not exist.`);
  return productResponse(product);
});
