import { ClientError } from '../../shared/errors.ts';
import { httpRoute, idempotencyKeyOf } from '../../shared/http.ts';
import { adjustStock } from './adjustments.ts';
import { inventoryDeps } from './deps.ts';
import { preconditionFailed, preconditionOf, ProductPathSchema, productResponse } from './product-http.ts';
import { AdjustStockRequestSchema } from './stock.ts';

const adjust = adjustStock(inventoryDeps());

/**
 * POST /products/{sku}/stock-adjustments `{delta, reason?}` → 200 with the product and its `ETag`.
 * Honours `If-Match` (412) and `Idempotency-Key` (a repeat answers 200 and adds nothing).
 */
export const handler = httpRoute(
  { params: ProductPathSchema, body: AdjustStockRequestSchema },
  async ({ params, body, headers }) => {
    const idempotencyKey = idempotencyKeyOf(headers);
    const precondition = preconditionOf(headers['if-match']);
    const result = await adjust(params.sku, body, {
      ...(precondition === undefined ? {} : { precondition }),
      ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
    });
    switch (result.outcome) {
      case 'ADJUSTED':
      case 'REPEATED':
        return productResponse(result.product);
      case 'NOT_FOUND':
        throw new ClientError('PRODUCT_NOT_FOUND', `Product ${params.sku} does not exist.`);
      case 'VERSION_MISMATCH':
        throw preconditionFailed(params.sku, result.current, precondition);
      case 'INSUFFICIENT_STOCK':
        throw new ClientError(
          'INSUFFICIENT_STOCK',
          `Product ${params.sku} has ${result.available} units available; removing ${-body.delta} would leave fewer than none.`,
        );
      case 'KEY_REUSED':
        throw new ClientError(
          'IDEMPOTENCY_KEY_REUSED',
          'This Idempotency-Key was already used with a different request body.',
        );
    }
  },
);
