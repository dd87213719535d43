import { taskHandler } from '../../shared/lambda-edge.ts';
import { inventoryDeps } from './deps.ts';
import { releaseStock } from './reservations.ts';
import { OrderRefSchema } from './stock.ts';

const release = releaseStock(inventoryDeps());

/** Saga compensation: return the order's reserved stock. */
export const handler = taskHandler(OrderRefSchema, async ({ orderId }) => release(orderId));
