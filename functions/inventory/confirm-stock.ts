import middy from '@middy/core';
import { orderLogKeys } from '../../shared/logger.ts';
import { inventoryDeps } from './deps.ts';
import { confirmStock } from './reservations.ts';
import { OrderRefSchema } from './stock.ts';

const confirm = confirmStock(inventoryDeps());

/** Saga task: the order is paid, its reservation becomes a sale. Throws ReservationExpiredError if too late. */
export const handler = middy()
  .use(orderLogKeys())
  .handler(async (event: unknown) => confirm(OrderRefSchema.parse(event).orderId));
