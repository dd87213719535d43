import { dynamoDocumentClient } from '../../shared/aws.ts';
import { inventoryConfig } from './config.ts';
import { dynamoInventoryRepository } from './inventory-repository.ts';
import type { ReservationDeps } from './reservations.ts';

/** The inventory handlers' ports, built once per execution environment. */
export function inventoryDeps(): ReservationDeps {
  const config = inventoryConfig();
  return {
    inventory: dynamoInventoryRepository(dynamoDocumentClient(), config.INVENTORY_TABLE_NAME),
    now: () => new Date(),
    ttlSeconds: config.RESERVATION_TTL_SECONDS,
  };
}
