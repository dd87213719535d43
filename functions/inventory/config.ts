import { z } from 'zod';
import { parseConfig } from '../../shared/config.ts';

/** Inventory service configuration, parsed once at cold start. */
export const inventoryConfig = () =>
  parseConfig(
    z.object({
      INVENTORY_TABLE_NAME: z.string().min(3),
      RESERVATION_TTL_SECONDS: z.coerce
        .number()
        .int()
        .min(1)
        .max(7 * 24 * 3600),
    }),
  );
