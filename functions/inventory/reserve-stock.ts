import middy from '@middy/core';
import { orderLogKeys } from '../../shared/logger.ts';
import { inventoryDeps } from './deps.ts';
import { reserveStock } from './reservations.ts';
import { ReserveCommandSchema, StockUnavailableError } from './stock.ts';

const reserve = reserveStock(inventoryDeps());

/**
 * Saga task: reserve every line of the order. A refusal (out of stock, unknown product) is raised as
 * its outcome error, which the state machine catches and compensates with its reason.
 */
export const handler = middy()
  .use(orderLogKeys())
  .handler(async (event: unknown) => {
    const outcome = await reserve(ReserveCommandSchema.parse(event));
    if (outcome.outcome === 'REJECTED') throw new StockUnavailableError(outcome.reason, outcome.skus);
    return outcome;
  });
