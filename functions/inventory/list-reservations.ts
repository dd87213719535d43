import { httpRoute } from '../../shared/http.ts';
import { inventoryDeps } from './deps.ts';
import { queryReservations, ReservationQuerySchema } from './reservation-queries.ts';

const query = queryReservations(inventoryDeps());

/** GET /inventory/reservations?orderId=…|sku=…&limit=…&cursor=… */
export const handler = httpRoute({ query: ReservationQuerySchema }, async ({ query: filter }) => ({
  statusCode: 200,
  body: await query(filter),
}));
