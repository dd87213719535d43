import middy from '@middy/core';
import { orderLogKeys } from '../../shared/logger.ts';
import { inventoryDeps } from './deps.ts';
import { releaseStock } from './reservations.ts';
import { OrderRefSchema } from './stock.ts';

const release = releaseStock(inventoryDeps());

/** Saga compensation: return the order's reserved stock. */
export const handler = middy()
  .use(orderLogKeys())
  .handler(async (event: unknown) => release(OrderRefSchema.parse(event).orderId));
