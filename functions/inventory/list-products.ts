import { httpRoute } from '../../shared/http.ts';
import { listCatalogue, ProductListQuerySchema } from './catalogue.ts';
import { inventoryDeps } from './deps.ts';

const list = listCatalogue(inventoryDeps());

/** GET /products?limit=…&cursor=… */
export const handler = httpRoute({ query: ProductListQuerySchema }, async ({ query }) => ({
  statusCode: 200,
  body: await list(query),
}));
