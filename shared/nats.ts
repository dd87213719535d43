import {
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import {
  credsAuthenticator,
  millis,
  nanos,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import type { StreamDefinition } from '../infra/nats/streams.ts';
import { natsServers, type NatsAccess } from './nats-access.ts';

/*
 * The one module the services and the local runtime talk to NATS through: they publish through
 * `EventPublisher` and declare streams as plain `StreamDefinition`s. The operators' tools in
 * infra/nats/ (consumers, tail, replay) and examples/ use nats.js directly for what only they need
 * (eslint allows it there).
 */

/** One message for a stream: its subject, its id (`Nats-Msg-Id`) and its body exactly as stored. */
export interface OutgoingMessage {
  subject: string;
  id: string;
  body: string;
}

export interface PubAck {
  stream: string;
  seq: number;
  duplicate: boolean;
}

export interface EventPublisher {
  /**
   * Publishes and waits (at most the publisher's `timeoutMs`) for the stream's PubAck. Calls may
   * overlap: messages leave in call order on the one connection. A duplicate (same id within the
   * stream's window) is acknowledged with `duplicate: true` and not stored again.
   */
  publish(message: OutgoingMessage): Promise<PubAck>;
  /** A round trip to the server within `timeoutMs`: false when it does not answer in time. */
  isAlive(timeoutMs: number): Promise<boolean>;
  /** The connection is closed for good (it will not reconnect): make a new publisher. */
  isClosed(): boolean;
  close(): Promise<void>;
}

export interface EventPublisherOptions {
  /** How long to wait for a PubAck before the publish counts as failed (default 5 s). */
  timeoutMs?: number;
  /** How often the client pings an idle server; two missed pongs mark the connection dead (default 10 s). */
  pingIntervalMs?: number;
  /** How long the first connect may take (default 5 s). */
  connectTimeoutMs?: number;
  name?: string;
}

/** The library's options for an access: servers, authenticator, TLS pinned to the given CA. */
export function connectionOptions(access: NatsAccess | string | string[]): ConnectionOptions {
  const resolved: NatsAccess =
    typeof access === 'string'
      ? { servers: natsServers(access) }
      : Array.isArray(access)
        ? { servers: access }
        : access;
  const options: ConnectionOptions = { servers: resolved.servers };
  if (resolved.credentials) {
    const text = resolved.credentials.trim();
    options.authenticator = text.includes('BEGIN NATS USER JWT')
      ? credsAuthenticator(new TextEncoder().encode(text))
      : nkeyAuthenticator(new TextEncoder().encode(text));
  }
  if (resolved.user !== undefined) {
    options.user = resolved.user;
    options.pass = resolved.password;
  }
  if (resolved.tlsCa) options.tls = { ca: resolved.tlsCa };
  return options;
}

export async function connectEventPublisher(
  access: NatsAccess | string | string[],
  options: EventPublisherOptions = {},
): Promise<EventPublisher> {
  const connection = await connect({
    ...connectionOptions(access),
    name: options.name ?? 'order-saga',
    timeout: options.connectTimeoutMs ?? 5_000,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    pingInterval: options.pingIntervalMs ?? 10_000,
    maxPingOut: 2,
  });
  const js = jetstream(connection, { timeout: options.timeoutMs ?? 5_000 });
  return publisherFor(connection, js);
}

function publisherFor(connection: NatsConnection, js: JetStreamClient): EventPublisher {
  return {
    async publish({ subject, id, body }) {
      const ack = await js.publish(subject, body, { msgID: id });
      return { stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate };
    },
    async isAlive(timeoutMs) {
      if (connection.isClosed()) return false;
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
      try {
        return await Promise.race([connection.flush().then(() => true as const), timedOut]);
      } catch {
        return false;
      } finally {
        clearTimeout(timer);
      }
    },
    isClosed: () => connection.isClosed(),
    async close() {
      if (connection.isClosed()) return;
      await connection.close();
    },
  };
}

/** One setting of an existing stream that is not what its definition says. */
export interface StreamDifference {
  stream: string;
  /** `subjects`, `max age`, `replicas`, `storage`, `duplicate window` or `retention`. */
  setting: string;
  /** The value on the server, as a person reads it (`order.*`, `1h`, `memory`). */
  existing: string;
  /** The value the definition wants. */
  wanted: string;
}

/**
 * Streams already on the server differ from their definitions, and `ensureStreams` was not allowed
 * to update them: nothing was created or changed.
 */
export class StreamSettingsDifferError extends Error {
  readonly differences: readonly StreamDifference[];
  constructor(differences: readonly StreamDifference[], options?: ErrorOptions) {
    const streams = [...new Set(differences.map((difference) => difference.stream))];
    super(`existing JetStream stream(s) ${streams.join(', ')} differ from the definitions`, options);
    this.name = 'StreamSettingsDifferError';
    this.differences = differences;
  }
}

/** One line for a person: `stream ORDERS: max age is 1h on the server, the definition says 24h`. */
export function describeStreamDifference(difference: StreamDifference): string {
  return `stream ${difference.stream}: ${difference.setting} is ${difference.existing} on the server, the definition says ${difference.wanted}`;
}

/** An existing stream could not be updated to its definition (e.g. JetStream cannot change storage). */
export class StreamUpdateError extends Error {
  readonly stream: string;
  constructor(stream: string, options?: ErrorOptions) {
    const reason = options?.cause instanceof Error ? options.cause.message : String(options?.cause);
    super(`could not update stream ${stream}: ${reason}`, options);
    this.name = 'StreamUpdateError';
    this.stream = stream;
  }
}

export interface EnsureStreamsOptions {
  /**
   * Update existing streams whose settings differ from their definitions. Default false: such a
   * stream is left alone and `ensureStreams` throws a `StreamSettingsDifferError` naming every
   * difference, before creating or changing anything, so that a server shared with other
   * applications is never reconfigured by accident.
   */
  update?: boolean;
}

export interface EnsureStreamsResult {
  created: string[];
  updated: string[];
  /** Already there with the definition's settings. */
  unchanged: string[];
}

/** `86400000` → `24h`, `120000` → `2m`, `0` → `unlimited` (JetStream's 0 max age). */
function duration(ms: number): string {
  if (ms === 0) return 'unlimited';
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** The settings of the contract a stream on the server must have; anything else about it is its own. */
interface ComparedSettings {
  subjects?: string[];
  max_age: number;
  num_replicas: number;
  storage: string;
  duplicate_window: number;
  retention: string;
}

const WANTED = { storage: 'file', retention: 'limits' } as const;

/** Every contract setting in which `existing` differs from `definition`; pure, for tests too. */
export function streamDifferences(
  definition: StreamDefinition,
  existing: ComparedSettings,
): StreamDifference[] {
  const differences: StreamDifference[] = [];
  const add = (setting: string, existingValue: string, wanted: string) => {
    if (existingValue !== wanted)
      differences.push({ stream: definition.name, setting, existing: existingValue, wanted });
  };
  add(
    'subjects',
    [...(existing.subjects ?? [])].sort().join(', '),
    [...definition.subjects].sort().join(', '),
  );
  add('max age', duration(millis(existing.max_age)), duration(definition.maxAgeMs));
  add(
    'duplicate window',
    duration(millis(existing.duplicate_window)),
    duration(definition.duplicateWindowMs),
  );
  add('replicas', String(existing.num_replicas), String(definition.replicas));
  add('storage', String(existing.storage), WANTED.storage);
  add('retention', String(existing.retention), WANTED.retention);
  return differences;
}

/**
 * Creates the streams that do not exist. An existing stream with the definition's settings is left
 * as it is; one whose settings differ is updated only with `update: true`, else nothing at all is
 * created or changed and a `StreamSettingsDifferError` lists every difference. Safe to run any
 * number of times.
 */
/** What the server holds for each definition: read-only. */
async function readStreams(jsm: JetStreamManager, definitions: StreamDefinition[]) {
  const missing: StreamDefinition[] = [];
  const differing: StreamDefinition[] = [];
  const unchanged: string[] = [];
  const differences: StreamDifference[] = [];
  for (const definition of definitions) {
    let existing: ComparedSettings;
    try {
      existing = (await jsm.streams.info(definition.name)).config;
    } catch (error) {
      if (!(error instanceof JetStreamApiError) || error.code !== JetStreamApiCodes.StreamNotFound)
        throw error;
      missing.push(definition);
      continue;
    }
    const found = streamDifferences(definition, existing);
    if (found.length === 0) unchanged.push(definition.name);
    else {
      differing.push(definition);
      differences.push(...found);
    }
  }
  return { missing, differing, unchanged, differences };
}

/**
 * Reads, and changes nothing: every difference between the streams on the server and their
 * definitions (streams that do not exist yet are no difference). Throws when the server cannot be
 * reached within `timeoutMs` (default 2 s) or has no JetStream.
 */
export async function checkStreams(
  access: NatsAccess | string | string[],
  definitions: StreamDefinition[],
  options: { timeoutMs?: number } = {},
): Promise<StreamDifference[]> {
  const connection = await connect({
    ...connectionOptions(access),
    name: 'order-saga-check',
    timeout: options.timeoutMs ?? 2000,
    maxReconnectAttempts: 0,
  });
  try {
    return (await readStreams(await jetstreamManager(connection), definitions)).differences;
  } finally {
    await connection.close();
  }
}

/**
 * Creates the streams that do not exist. An existing stream with the definition's settings is left
 * as it is; one whose settings differ is updated only with `update: true`, else nothing at all is
 * created or changed and a `StreamSettingsDifferError` lists every difference. Safe to run any
 * number of times.
 */
export async function ensureStreams(
  access: NatsAccess | string | string[],
  definitions: StreamDefinition[],
  options: EnsureStreamsOptions = {},
): Promise<EnsureStreamsResult> {
  const connection = await connect({ ...connectionOptions(access), name: 'order-saga-setup' });
  try {
    const jsm = await jetstreamManager(connection);
    // Read everything first: a refusal must leave the server exactly as it was.
    const { missing, differing, unchanged, differences } = await readStreams(jsm, definitions);
    if (differences.length > 0 && !options.update) throw new StreamSettingsDifferError(differences);

    const configOf = (definition: StreamDefinition) => ({
      name: definition.name,
      subjects: definition.subjects,
      retention: WANTED.retention,
      storage: WANTED.storage,
      max_age: nanos(definition.maxAgeMs),
      duplicate_window: nanos(definition.duplicateWindowMs),
      num_replicas: definition.replicas,
    });
    for (const definition of differing) {
      try {
        await jsm.streams.update(definition.name, configOf(definition));
      } catch (error) {
        throw new StreamUpdateError(definition.name, { cause: error });
      }
    }
    for (const definition of missing) await jsm.streams.add(configOf(definition));
    return {
      created: missing.map((definition) => definition.name),
      updated: differing.map((definition) => definition.name),
      unchanged,
    };
  } finally {
    await connection.close();
  }
}
