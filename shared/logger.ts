import { Logger } from '@aws-lambda-powertools/logger';

/**
 * One structured logger per function. Powertools reads POWERTOOLS_SERVICE_NAME and
 * POWERTOOLS_LOG_LEVEL itself; the stack sets both on every function.
 */
export const logger = new Logger();
