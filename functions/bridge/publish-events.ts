import { getSecret } from '@aws-lambda-powertools/parameters/secrets';
import type { Context, DynamoDBBatchResponse, DynamoDBStreamEvent } from 'aws-lambda';
import { z } from 'zod';
import { parseConfig } from '../../shared/config.ts';
import { eventHandler } from '../../shared/lambda-edge.ts';
import { logger } from '../../shared/logger.ts';
import { Metric } from '../../shared/metric-names.ts';
import { addCount, addDuration } from '../../shared/metrics.ts';
import {
  describeNatsAccess,
  natsAccessFromEnv,
  natsAccessFromSecret,
  type NatsAccess,
} from '../../shared/nats-access.ts';
import { connectEventPublisher } from '../../shared/nats.ts';
import { eventBridge } from './forward-events.ts';

const config = parseConfig(
  z.object({
    NATS_URL: z.string().min(1),
    /** On AWS: a Secrets Manager secret with the NATS credentials and CA (docs/nats.md). */
    NATS_SECRET_ARN: z.string().startsWith('arn:').optional(),
    /** Locally: the files the connection reads (a `.creds` or NKEY seed file; the CA's PEM). */
    NATS_CREDS: z.string().min(1).optional(),
    NATS_TLS_CA: z.string().min(1).optional(),
    NATS_USER: z.string().min(1).optional(),
    NATS_PASSWORD: z.string().min(1).optional(),
    NATS_PUBLISH_TIMEOUT_MS: z.coerce.number().int().positive().default(5_000),
    NATS_ALIVE_TIMEOUT_MS: z.coerce.number().int().positive().default(1_000),
  }),
);

/**
 * After NATS refused the credentials, the next connection reads the secret again instead of the
 * cached copy: rotated credentials take effect at once, not within the cache's hour.
 */
let refused = false;

/** Locally the environment names the files (NATS_CREDS, NATS_TLS_CA); on AWS the secret holds them. */
async function access(): Promise<NatsAccess> {
  if (!config.NATS_SECRET_ARN) {
    const { NATS_URL, NATS_CREDS, NATS_TLS_CA, NATS_USER, NATS_PASSWORD } = config;
    return natsAccessFromEnv({ NATS_URL, NATS_CREDS, NATS_TLS_CA, NATS_USER, NATS_PASSWORD });
  }
  const secret = await getSecret(config.NATS_SECRET_ARN, { maxAge: 3600, forceFetch: refused });
  refused = false;
  if (typeof secret !== 'string') throw new Error('the NATS secret is not a string');
  return natsAccessFromSecret(config.NATS_URL, secret);
}

const isAuthorizationError = (error: unknown) =>
  error instanceof Error && /authori[sz]ation|authentication/i.test(`${error.name} ${error.message}`);

const bridge = eventBridge({
  connect: async () => {
    const resolved = await access();
    const publisher = await connectEventPublisher(resolved, {
      timeoutMs: config.NATS_PUBLISH_TIMEOUT_MS,
      pingIntervalMs: 5_000,
      name: 'order-saga-bridge',
    }).catch((error: unknown) => {
      if (isAuthorizationError(error)) refused = true;
      throw error;
    });
    logger.info('connected to NATS', { nats: describeNatsAccess(resolved) });
    return publisher;
  },
  aliveTimeoutMs: config.NATS_ALIVE_TIMEOUT_MS,
  onError: (error, record) => logger.error('could not publish event', { error, eventID: record.eventID }),
  onUnpublishable: (error, record) => {
    logger.error('skipped a stream record that holds no publishable event; it stays in its table', {
      error,
      eventID: record.eventID,
      keys: record.dynamodb?.Keys,
    });
    addCount(Metric.BridgeFailures);
  },
  onPublished: (_record, event) => {
    addCount(Metric.EventsPublished);
    // From the event's own `time` (set in the transaction that committed it, to the millisecond):
    // the stream record's ApproximateCreationDateTime is too coarse for a lag of milliseconds.
    const committed = Date.parse(event.time);
    if (Number.isFinite(committed)) addDuration(Metric.BridgeLag, Math.max(0, Date.now() - committed));
  },
  onNotReached: (records) =>
    logger.warn('ran out of time: records left for the retry', {
      notReached: records.length,
      first: records[0]?.dynamodb?.SequenceNumber,
    }),
  onReconnect: (why) => logger.warn('replacing the NATS connection', { why }),
});

/**
 * DynamoDB Streams (outbox items only, by filter) → NATS JetStream, with partial batch failures.
 * Every record left for Lambda's retry (failed, held back behind one that failed, not reached, or
 * the whole batch while NATS does not answer) counts as a BridgeFailure.
 */
export const handler = eventHandler(
  async (event: DynamoDBStreamEvent, context: Context): Promise<DynamoDBBatchResponse> => {
    const response = await bridge.handle(event, context);
    if (response.batchItemFailures.length > 0)
      addCount(Metric.BridgeFailures, undefined, response.batchItemFailures.length);
    return response;
  },
);
