import { parseArgs } from 'node:util';
import { z } from 'zod';
import { parseConfig } from '../../shared/config.ts';
import { natsAccessFromEnv } from '../../shared/nats-access.ts';
import { describeStreamDifference, ensureStreams, StreamSettingsDifferError } from '../../shared/nats.ts';
import { FlagSettingSchema } from '../local/config.ts';
import { configOrExit, EXIT_CODES } from '../local/preflight.ts';
import {
  consumerDefinitions,
  ConsumerSettingsDifferError,
  describeConsumerDifference,
  ensureConsumers,
} from './consumers.ts';
import { streamDefinitions } from './streams.ts';

/**
 * Creates the contract's JetStream streams, then the downstream services' durable consumers
 * (consumers.ts), both variables required:
 *   NATS_URL=nats://a:4222,nats://b:4222,nats://c:4222 NATS_REPLICAS=3 npm run nats:setup
 * An existing stream whose settings differ (subjects, max age, duplicate window, replicas, storage,
 * retention) is left alone, and the script names each difference and exits 3, unless `--update`
 * (or NATS_UPDATE_STREAMS=true, as for `npm start`) lets it update them. The same goes for an
 * existing consumer; one whose difference JetStream cannot change in place (deliver or ack policy,
 * pull instead of push) is deleted and created again only with `--recreate-consumers` as well.
 */
const PREFIX = 'nats:setup';
const USAGE = 'usage: NATS_URL=… NATS_REPLICAS=… npm run nats:setup [-- --update [--recreate-consumers]]';
let update: boolean;
let recreateConsumers: boolean;
try {
  const { values } = parseArgs({
    options: {
      update: { type: 'boolean', default: false },
      'recreate-consumers': { type: 'boolean', default: false },
    },
  });
  update = values.update;
  recreateConsumers = values['recreate-consumers'];
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
// NATS_UPDATE_STREAMS=true counts as --update, here as everywhere.
update ||= config.NATS_UPDATE_STREAMS;
if (recreateConsumers && !update) {
  console.error(`${PREFIX}: --recreate-consumers needs --update (or NATS_UPDATE_STREAMS=true); ${USAGE}`);
  process.exit(EXIT_CODES.badConfiguration);
}

// NATS_CREDS / NATS_TLS_CA (docs/nats.md): the admin user's seed and the cluster's CA.
const access = configOrExit(PREFIX, () => natsAccessFromEnv({ ...process.env, NATS_URL: config.NATS_URL }));
const definitions = streamDefinitions(config.NATS_REPLICAS);
try {
  const result = await ensureStreams(access, definitions, {
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

const consumers = consumerDefinitions();
try {
  const result = await ensureConsumers(access, consumers, {
    update: update || config.NATS_UPDATE_STREAMS,
    recreate: recreateConsumers,
  });
  for (const consumer of consumers) {
    const what = result.created.includes(consumer.name)
      ? 'created'
      : result.updated.includes(consumer.name)
        ? 'updated'
        : result.recreated.includes(consumer.name)
          ? "recreated (it starts again at the stream's first message)"
          : 'already as defined';
    console.log(
      `consumer ${consumer.stream}/${consumer.name}: ${consumer.filterSubject} → ${consumer.deliverSubject}, queue group ${consumer.deliverGroup}: ${what}`,
    );
  }
} catch (error) {
  if (!(error instanceof ConsumerSettingsDifferError)) {
    console.error(`${PREFIX}: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(EXIT_CODES.failure);
  }
  for (const difference of error.differences)
    console.error(`${PREFIX}: ${describeConsumerDifference(difference)}`);
  console.error(
    error.needsRecreate
      ? `${PREFIX}: no consumer was changed; fix: npm run nats:setup -- --update --recreate-consumers deletes and recreates those JetStream cannot change (their services then get the stream's events again from its first message) and updates the others`
      : `${PREFIX}: no consumer was changed; fix: npm run nats:setup -- --update (or NATS_UPDATE_STREAMS=true) updates them to the definitions`,
  );
  process.exit(EXIT_CODES.missingPrerequisite);
}
