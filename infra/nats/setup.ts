import { parseArgs } from 'node:util';
import { z } from 'zod';
import { parseConfig } from '../../shared/config.ts';
import { describeStreamDifference, ensureStreams, StreamSettingsDifferError } from '../../shared/nats.ts';
import { FlagSettingSchema } from '../local/config.ts';
import { configOrExit, EXIT_CODES } from '../local/preflight.ts';
import { streamDefinitions } from './streams.ts';

/**
 * Creates the contract's JetStream streams (both variables required):
 *   NATS_URL=nats://a:4222,nats://b:4222,nats://c:4222 NATS_REPLICAS=3 npm run nats:setup
 * An existing stream whose settings differ (subjects, max age, duplicate window, replicas, storage,
 * retention) is left alone, and the script names each difference and exits 3, unless `--update`
 * (or NATS_UPDATE_STREAMS=true, as for `npm start`) lets it update them.
 */
const PREFIX = 'nats:setup';
const USAGE = 'usage: NATS_URL=… NATS_REPLICAS=… npm run nats:setup [-- --update]';
let update: boolean;
try {
  update = parseArgs({ options: { update: { type: 'boolean', default: false } } }).values.update;
} catch (error) {
  console.error(`${PREFIX}: ${error instanceof Error ? error.message : String(error)}; ${USAGE}`);
  process.exit(EXIT_CODES.badConfiguration);
}
const config = configOrExit(PREFIX, () =>
  parseConfig(
    z.object({
      NATS_URL: z.string().min(1),
      // Required: a default of 1 would silently scale a cluster's R3 streams down on a re-run.
      NATS_REPLICAS: z.coerce.number().int().min(1).max(5),
      NATS_UPDATE_STREAMS: FlagSettingSchema.default(false),
    }),
  ),
);

const servers = config.NATS_URL.split(',').map((url) => url.trim());
const definitions = streamDefinitions(config.NATS_REPLICAS);
try {
  const result = await ensureStreams(servers, definitions, {
    update: update || config.NATS_UPDATE_STREAMS,
  });
  for (const definition of definitions) {
    const what = result.created.includes(definition.name)
      ? 'created'
      : result.updated.includes(definition.name)
        ? 'updated'
        : 'already as defined';
    console.log(
      `stream ${definition.name}: ${definition.subjects.join(', ')} (replicas ${definition.replicas}): ${what}`,
    );
  }
} catch (error) {
  if (!(error instanceof StreamSettingsDifferError)) {
    console.error(`${PREFIX}: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(EXIT_CODES.failure);
  }
  for (const difference of error.differences)
    console.error(`${PREFIX}: ${describeStreamDifference(difference)}`);
  console.error(
    `${PREFIX}: nothing was changed; fix: npm run nats:setup -- --update (or NATS_UPDATE_STREAMS=true) updates them to the definitions`,
  );
  process.exit(EXIT_CODES.missingPrerequisite);
}
