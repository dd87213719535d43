import { z } from 'zod';
import { parseConfig } from '../../shared/config.ts';

/** Orders service configuration; STATE_MACHINE_ARN only where the function starts sagas. */
export const ordersConfig = <T extends z.ZodRawShape>(extra: T) =>
  parseConfig(z.object({ ORDERS_TABLE_NAME: z.string().min(3), ...extra }));
