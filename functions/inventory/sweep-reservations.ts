import middy from '@middy/core';
import { logger } from '../../shared/logger.ts';
import { inventoryDeps } from './deps.ts';
import { sweepExpired } from './reservations.ts';

const sweep = sweepExpired(inventoryDeps());

/** Scheduled: releases reservations whose time-to-live has passed. */
export const handler = middy().handler(async () => {
  const result = await sweep();
  if (result.expired > 0) logger.info('released expired reservations', result);
  return result;
});
