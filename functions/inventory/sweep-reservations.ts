import { eventHandler } from '../../shared/lambda-edge.ts';
import { logger } from '../../shared/logger.ts';
import { inventoryDeps } from './deps.ts';
import { sweepExpired } from './reservations.ts';

const sweep = sweepExpired(inventoryDeps());

/** Scheduled: releases reservations whose time-to-live has passed. */
export const handler = eventHandler(async () => {
  const { expired, failures } = await sweep();
  if (expired > 0) logger.info('released expired reservations', { expired });
  for (const error of failures) logger.error('could not release an expired reservation', { error });
  // A failed invocation shows in the function's metrics; EventBridge retries it, which is harmless.
  if (failures.length > 0)
    throw new AggregateError(failures, `${failures.length} expired reservation(s) not released`);
  return { expired };
});
