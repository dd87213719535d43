import { z } from 'zod';
import { ensureStreams } from '../../shared/nats.ts';
import { streamDefinitions } from './streams.ts';

/**
 * Creates or updates the contract's JetStream streams, idempotently (both variables required):
 *   NATS_URL=nats://a:4222,nats://b:4222,nats://c:4222 NATS_REPLICAS=3 npm run nats:setup
 */
const config = z
  .object({
    NATS_URL: z.string().min(1),
    // Required: a default of 1 would silently scale a cluster's R3 streams down on a re-run.
    NATS_REPLICAS: z.coerce.number().int().min(1).max(5),
  })
  .parse(process.env);

const servers = config.NATS_URL.split(',').map((url) => url.trim());
const definitions = streamDefinitions(config.NATS_REPLICAS);
await ensureStreams(servers, definitions);
for (const definition of definitions) {
  console.log(
    `stream ${definition.name}: ${definition.subjects.join(', ')} (replicas ${definition.replicas})`,
  );
}
