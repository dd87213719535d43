import middy from '@middy/core';
import { inventoryDeps } from './deps.ts';
import { reserveStock } from './reservations.ts';
import { ReserveCommandSchema } from './stock.ts';

const reserve = reserveStock(inventoryDeps());

/** Saga task: reserve every line of the order, or report why not. */
export const handler = middy().handler(async (event: unknown) => reserve(ReserveCommandSchema.parse(event)));
