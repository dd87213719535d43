import {
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
} from '@nats-io/jetstream';
import { nanos, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { CloudEvent } from '../events/envelope.ts';
import type { StreamDefinition } from '../infra/nats/streams.ts';

/*
 * The only module that talks to NATS. Everything else publishes CloudEvents through `EventPublisher`
 * and declares streams as plain `StreamDefinition`s.
 */

export interface EventPublisher {
  /** Publishes and waits for the stream's PubAck. Duplicates (same id within the window) are dropped by the server. */
  publish(event: CloudEvent): Promise<{ stream: string; seq: number; duplicate: boolean }>;
  close(): Promise<void>;
}

export interface EventPublisherOptions {
  servers: string | string[];
  /** How long to wait for a PubAck before the publish counts as failed (default 5 s). */
  timeoutMs?: number;
  name?: string;
}

export async function connectEventPublisher(options: EventPublisherOptions): Promise<EventPublisher> {
  const connection = await connect({
    servers: options.servers,
    name: options.name ?? 'order-saga',
    maxReconnectAttempts: -1,
  });
  const js = jetstream(connection, { timeout: options.timeoutMs ?? 5_000 });
  return publisherFor(connection, js);
}

function publisherFor(connection: NatsConnection, js: JetStreamClient): EventPublisher {
  return {
    async publish(event) {
      const ack = await js.publish(event.type, JSON.stringify(event), { msgID: event.id });
      return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
    },
    async close() {
      await connection.drain();
    },
  };
}

/** Creates the streams, or updates them to the given definition; safe to run any number of times. */
export async function ensureStreams(
  servers: string | string[],
  definitions: StreamDefinition[],
): Promise<void> {
  const connection = await connect({ servers, name: 'order-saga-setup' });
  try {
    const jsm = await jetstreamManager(connection);
    for (const definition of definitions) {
      const config = {
        name: definition.name,
        subjects: definition.subjects,
        retention: 'limits' as const,
        storage: 'file' as const,
        max_age: nanos(definition.maxAgeMs),
        duplicate_window: nanos(definition.duplicateWindowMs),
        num_replicas: definition.replicas,
      };
      try {
        await jsm.streams.info(definition.name);
        await jsm.streams.update(definition.name, config);
      } catch (error) {
        if (!(error instanceof JetStreamApiError) || error.code !== JetStreamApiCodes.StreamNotFound)
          throw error;
        await jsm.streams.add(config);
      }
    }
  } finally {
    await connection.close();
  }
}
