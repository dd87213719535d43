import { taskHandler } from '../../shared/lambda-edge.ts';
import { Metric } from '../../shared/metric-names.ts';
import { addCount } from '../../shared/metrics.ts';
import { inventoryDeps } from './deps.ts';
import { reserveStock } from './reservations.ts';
import { ReserveCommandSchema, StockUnavailableError } from './stock.ts';

const reserve = reserveStock({
  ...inventoryDeps(),
  onRefused: (reason) => addCount(Metric.StockRefusals, { reason }),
});

/**
 * Saga task: reserve every line of the order. A refusal (out of stock, unknown product) is raised as
 * its outcome error, which the state machine catches and compensates with its reason.
 */
export const handler = taskHandler(ReserveCommandSchema, async (command) => {
  const outcome = await reserve(command);
  if (outcome.outcome === 'REJECTED') throw new StockUnavailableError(outcome.reason, outcome.skus);
  return outcome;
});
