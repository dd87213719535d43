import { taskHandler } from '../../shared/lambda-edge.ts';
import { inventoryDeps } from './deps.ts';
import { confirmStock } from './reservations.ts';
import { OrderRefSchema } from './stock.ts';

const confirm = confirmStock(inventoryDeps());

/** Saga task: the order is paid, its reservation becomes a sale. Throws ReservationExpiredError if too late. */
export const handler = taskHandler(OrderRefSchema, async ({ orderId }) => confirm(orderId));
