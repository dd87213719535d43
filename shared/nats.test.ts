import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamDefinitions } from '../infra/nats/streams.ts';
import { startNatsServer, type LocalService } from '../infra/local/processes.ts';
import {
  checkStreams,
  describeStreamDifference,
  ensureStreams,
  StreamSettingsDifferError,
  streamDifferences,
} from './nats.ts';

/*
 * The adoption rule on a server of the test's own (not the suite's, whose streams other files use):
 * streams that exist with other settings are never changed silently.
 */

const HOUR_MS = 3600 * 1000;
/** JetStream durations are nanoseconds. */
const nanos = (ms: number) => ms * 1_000_000;
let nats: LocalService;

beforeAll(async () => {
  nats = await startNatsServer();
});

afterAll(async () => {
  await nats?.stop();
});

describe('ensureStreams on a server that already holds a stream', () => {
  it('refuses an ORDERS with another max age, names the difference and changes nothing; updates with update: true', async () => {
    const definitions = streamDefinitions(1);
    const orders = definitions.find((definition) => definition.name === 'ORDERS')!;
    // Someone else's ORDERS: same subjects, one hour of history.
    const someoneElses = { ...orders, maxAgeMs: HOUR_MS };
    expect(await ensureStreams(nats.url, [someoneElses])).toMatchObject({ created: ['ORDERS'] });

    let refusal: unknown;
    try {
      await ensureStreams(nats.url, definitions);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(StreamSettingsDifferError);
    const differences = (refusal as StreamSettingsDifferError).differences;
    expect(differences).toEqual([{ stream: 'ORDERS', setting: 'max age', existing: '1h', wanted: '24h' }]);
    expect(differences.map(describeStreamDifference)).toEqual([
      'stream ORDERS: max age is 1h on the server, the definition says 24h',
    ]);
    // Nothing changed: ORDERS keeps its hour (the read-only check the pre-flight makes says so)...
    expect(await checkStreams(nats.url, [someoneElses])).toEqual([]);
    expect(await checkStreams(nats.url, definitions)).toEqual(differences);

    // ...and the missing streams were not created either: the update creates them.
    const result = await ensureStreams(nats.url, definitions, { update: true });
    expect(result).toEqual({ created: ['INVENTORY', 'PAYMENTS'], updated: ['ORDERS'], unchanged: [] });
    expect(await checkStreams(nats.url, definitions)).toEqual([]);

    // Now as defined: a second run changes nothing and needs no permission.
    expect(await ensureStreams(nats.url, definitions)).toEqual({
      created: [],
      updated: [],
      unchanged: ['ORDERS', 'INVENTORY', 'PAYMENTS'],
    });
  });
});

describe('streamDifferences', () => {
  const [orders] = streamDefinitions(1);
  const asDefined = {
    subjects: ['order.*'],
    max_age: nanos(24 * HOUR_MS),
    duplicate_window: nanos(600_000),
    num_replicas: 1,
    storage: 'file',
    retention: 'limits',
  };

  it('finds none when the contract settings match, whatever else the stream has', () => {
    expect(streamDifferences(orders!, { ...asDefined, subjects: ['order.*'] })).toEqual([]);
  });

  it('names every setting that differs: subjects, max age, duplicate window, replicas, storage, retention', () => {
    expect(
      streamDifferences(orders!, {
        subjects: ['orders.>', 'order.*'],
        max_age: 0,
        duplicate_window: nanos(90_000),
        num_replicas: 3,
        storage: 'memory',
        retention: 'workqueue',
      }).map(describeStreamDifference),
    ).toEqual([
      'stream ORDERS: subjects is order.*, orders.> on the server, the definition says order.*',
      'stream ORDERS: max age is unlimited on the server, the definition says 24h',
      'stream ORDERS: duplicate window is 90s on the server, the definition says 10m',
      'stream ORDERS: replicas is 3 on the server, the definition says 1',
      'stream ORDERS: storage is memory on the server, the definition says file',
      'stream ORDERS: retention is workqueue on the server, the definition says limits',
    ]);
  });
});
