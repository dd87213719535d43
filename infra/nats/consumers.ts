import {
  AckPolicy,
  DeliverPolicy,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { millis, nanos } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { STREAMS, SUBJECTS, type StreamName, type Subject } from '../../events/subjects.ts';
import type { NatsAccess } from '../../shared/nats-access.ts';
import { connectionOptions } from '../../shared/nats.ts';

/*
 * The durable JetStream consumers of the downstream services, declared as plain data, and
 * `ensureConsumers`, which creates them the way `ensureStreams` creates streams: a consumer that
 * already exists with other settings is never changed silently.
 *
 * Designed for nats-server 2.9: a consumer has one `filter_subject` (several `filter_subjects` need
 * 2.10), so a service that reads several streams gets one consumer per stream. Each consumer takes
 * its whole stream (`order.*`, …) even when its service acts on a few subjects only: the service
 * must see every event of a (source, subject) to tell a duplicate from a gap by `sequence`, and one
 * source writes to one stream only. It acks the others unread.
 */

/** One durable push consumer of one stream for one downstream service, independent of the client library. */
export interface ConsumerDefinition {
  /** The durable name: `<service>-<stream in lower case>`, e.g. `fulfilment-orders`. */
  name: string;
  service: string;
  stream: StreamName;
  /** One subject filter (nats-server 2.9): the stream's own subjects. */
  filterSubject: string;
  /** The queue group every instance of the service joins: each message goes to one of them. */
  deliverGroup: string;
  /** Where the server pushes the messages; outside every stream's subjects. */
  deliverSubject: string;
  /** How long an instance has to ack a message before the server gives it to another one. */
  ackWaitMs: number;
  /** Deliveries of one message before the server gives up on it (and the service sees a gap). */
  maxDeliver: number;
  /**
   * Unacknowledged messages in flight across the whole queue group. 1: the group handles its
   * stream strictly in order, so one order's events are never handled concurrently or out of order
   * by two instances, and "highest sequence seen" is a sound duplicate check.
   */
  maxAckPending: number;
  /** The subjects the service acts on; it acks every other message of the stream unread. */
  handles: readonly Subject[];
  description: string;
}

/** Each downstream service of the issue: what it reads and why. */
const SERVICES: readonly {
  service: string;
  handles: readonly Subject[];
  purpose: string;
}[] = [
  {
    service: 'fulfilment',
    handles: ['order.completed', 'order.cancelled'],
    purpose: 'ships completed orders, stops cancelled ones',
  },
  {
    service: 'notifications',
    handles: SUBJECTS.filter((subject) => subject.startsWith('order.') || subject.startsWith('payment.')),
    purpose: 'e-mails customers about their orders and payments',
  },
  { service: 'analytics', handles: SUBJECTS, purpose: 'records every domain event' },
];

/** The defaults every consumer shares: 30 s to handle a message, 5 attempts, one at a time per group. */
const CONSUMER_DEFAULTS = { ackWaitMs: 30_000, maxDeliver: 5, maxAckPending: 1 } as const;

/** `order.*` → `order.`: the prefix every subject of the stream starts with. */
const prefixOf = (streamSubject: string) => streamSubject.replace(/\*$|>$/, '');

/** The consumers `npm run nats:setup` creates: one per stream that a service handles a subject of. */
export function consumerDefinitions(): ConsumerDefinition[] {
  const definitions: ConsumerDefinition[] = [];
  for (const { service, handles, purpose } of SERVICES) {
    for (const stream of Object.keys(STREAMS) as StreamName[]) {
      const inStream = handles.filter((subject) => subject.startsWith(prefixOf(STREAMS[stream])));
      if (inStream.length === 0) continue;
      const lower = stream.toLowerCase();
      definitions.push({
        name: `${service}-${lower}`,
        service,
        stream,
        filterSubject: STREAMS[stream],
        deliverGroup: service,
        deliverSubject: `deliver.${service}.${lower}`,
        ...CONSUMER_DEFAULTS,
        handles: inStream,
        description: `${service}: ${purpose} (${stream})`,
      });
    }
  }
  return definitions;
}

/** One setting of an existing consumer that is not what its definition says. */
export interface ConsumerDifference {
  stream: string;
  consumer: string;
  /** `filter subject`, `deliver subject`, `deliver group`, `ack wait`, `max deliver`, `max ack pending`, `deliver policy`, `ack policy`, `kind`. */
  setting: string;
  existing: string;
  wanted: string;
  /**
   * Whether JetStream can change it on the existing consumer. It cannot change the deliver or ack
   * policy, nor turn a pull consumer into a push one: such a consumer must be deleted and created
   * again, which forgets how far its services got.
   */
  inPlace: boolean;
}

/** One line for a person: `consumer ORDERS/fulfilment-orders: ack wait is 1m on the server, the definition says 30s`. */
export function describeConsumerDifference(difference: ConsumerDifference): string {
  const { stream, consumer, setting, existing, wanted, inPlace } = difference;
  return `consumer ${stream}/${consumer}: ${setting} is ${existing} on the server, the definition says ${wanted}${inPlace ? '' : ' (JetStream cannot change this in place: the consumer must be recreated)'}`;
}

/**
 * Consumers already on the server differ from their definitions, and `ensureConsumers` was not
 * allowed to change them: no consumer was created, changed or deleted.
 */
export class ConsumerSettingsDifferError extends Error {
  readonly differences: readonly ConsumerDifference[];
  /** Some difference can only be resolved by deleting and recreating its consumer (`recreate: true`). */
  readonly needsRecreate: boolean;
  constructor(differences: readonly ConsumerDifference[], options?: ErrorOptions) {
    const names = [
      ...new Set(differences.map((difference) => `${difference.stream}/${difference.consumer}`)),
    ];
    super(`existing JetStream consumer(s) ${names.join(', ')} differ from the definitions`, options);
    this.name = 'ConsumerSettingsDifferError';
    this.differences = differences;
    this.needsRecreate = differences.some((difference) => !difference.inPlace);
  }
}

/** The server refused to change, delete or create a consumer. */
export class ConsumerUpdateError extends Error {
  readonly stream: string;
  readonly consumer: string;
  constructor(stream: string, consumer: string, action: string, options?: ErrorOptions) {
    const reason = options?.cause instanceof Error ? options.cause.message : String(options?.cause);
    // nats-server 2.9 answers a deliver subject change while instances listen on the old one with
    // "consumer name already in use": say what it means.
    const hint = /name already in use/.test(reason)
      ? ' (the server does not move a deliver subject while instances of the service listen on it: stop them first)'
      : '';
    super(`could not ${action} consumer ${stream}/${consumer}: ${reason}${hint}`, options);
    this.name = 'ConsumerUpdateError';
    this.stream = stream;
    this.consumer = consumer;
  }
}

/** The stream of a consumer definition does not exist: create the streams first. */
export class ConsumerStreamMissingError extends Error {
  readonly stream: string;
  constructor(stream: string, options?: ErrorOptions) {
    super(`stream ${stream} does not exist: create the streams before their consumers`, options);
    this.name = 'ConsumerStreamMissingError';
    this.stream = stream;
  }
}

export interface EnsureConsumersOptions {
  /**
   * Change existing consumers whose settings differ, where JetStream can change them in place.
   * Default false: `ensureConsumers` throws a `ConsumerSettingsDifferError` naming every difference
   * before it touches anything.
   */
  update?: boolean;
  /**
   * With `update`: delete and recreate a consumer whose differences JetStream cannot change in
   * place. The new consumer starts again at the first message of its stream (up to 24 h of events
   * are delivered again, which a service drops as duplicates only if it persists the sequences it
   * has seen). Default false: such a consumer makes `ensureConsumers` throw, touching nothing.
   */
  recreate?: boolean;
}

export interface EnsureConsumersResult {
  created: string[];
  updated: string[];
  recreated: string[];
  /** Already there with the definition's settings. */
  unchanged: string[];
}

/** The settings of an existing consumer that its definition decides. */
type ComparedConsumerSettings = Pick<
  ConsumerConfig,
  | 'filter_subject'
  | 'deliver_subject'
  | 'deliver_group'
  | 'ack_wait'
  | 'max_deliver'
  | 'max_ack_pending'
  | 'deliver_policy'
  | 'ack_policy'
>;

/** `30000` → `30s`, `90000` → `90s`, `120000` → `2m`. */
function duration(ms: number): string {
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** Every decided setting in which `existing` differs from `definition`; pure, for tests too. */
export function consumerDifferences(
  definition: ConsumerDefinition,
  existing: ComparedConsumerSettings,
): ConsumerDifference[] {
  const differences: ConsumerDifference[] = [];
  const add = (setting: string, existingValue: string, wanted: string, inPlace: boolean) => {
    if (existingValue !== wanted)
      differences.push({
        stream: definition.stream,
        consumer: definition.name,
        setting,
        existing: existingValue,
        wanted,
        inPlace,
      });
  };
  const none = '(none)';
  if (!existing.deliver_subject) {
    // A pull consumer of that name: nothing else about it can be compared or changed.
    add('kind', 'pull', 'push', false);
    return differences;
  }
  // In place on nats-server 2.9 (tried against 2.9.10): the filter, the deliver subject and group, ack wait,
  // max deliver and max ack pending. A changed filter applies from the consumer's current position on.
  add('filter subject', existing.filter_subject || none, definition.filterSubject, true);
  add('deliver subject', existing.deliver_subject, definition.deliverSubject, true);
  add('deliver group', existing.deliver_group || none, definition.deliverGroup, true);
  add('ack wait', duration(millis(existing.ack_wait ?? 0)), duration(definition.ackWaitMs), true);
  add('max deliver', String(existing.max_deliver ?? -1), String(definition.maxDeliver), true);
  add('max ack pending', String(existing.max_ack_pending ?? -1), String(definition.maxAckPending), true);
  // JetStream refuses these ("deliver policy can not be updated", "ack policy can not be updated").
  add('deliver policy', String(existing.deliver_policy), DeliverPolicy.All, false);
  add('ack policy', String(existing.ack_policy), AckPolicy.Explicit, false);
  return differences;
}

/** The settings JetStream can change on an existing push consumer. */
function updatableConfigOf(definition: ConsumerDefinition) {
  return {
    description: definition.description,
    filter_subject: definition.filterSubject,
    deliver_subject: definition.deliverSubject,
    deliver_group: definition.deliverGroup,
    ack_wait: nanos(definition.ackWaitMs),
    max_deliver: definition.maxDeliver,
    max_ack_pending: definition.maxAckPending,
  };
}

function configOf(definition: ConsumerDefinition): Partial<ConsumerConfig> {
  return {
    ...updatableConfigOf(definition),
    durable_name: definition.name,
    deliver_policy: DeliverPolicy.All,
    ack_policy: AckPolicy.Explicit,
    // No idle heartbeats or flow control: JetStream allows neither with a deliver group.
  };
}

const isApiError = (error: unknown, code: number) =>
  error instanceof JetStreamApiError && error.code === code;

/** What the server holds for each definition: read-only. */
async function readConsumers(jsm: JetStreamManager, definitions: readonly ConsumerDefinition[]) {
  const missing: ConsumerDefinition[] = [];
  const differing: { definition: ConsumerDefinition; differences: ConsumerDifference[] }[] = [];
  const unchanged: string[] = [];
  for (const definition of definitions) {
    let existing: ConsumerInfo;
    try {
      existing = await jsm.consumers.info(definition.stream, definition.name);
    } catch (error) {
      if (isApiError(error, JetStreamApiCodes.StreamNotFound))
        throw new ConsumerStreamMissingError(definition.stream, { cause: error });
      if (!isApiError(error, JetStreamApiCodes.ConsumerNotFound)) throw error;
      missing.push(definition);
      continue;
    }
    const differences = consumerDifferences(definition, existing.config);
    if (differences.length === 0) unchanged.push(definition.name);
    else differing.push({ definition, differences });
  }
  return { missing, differing, unchanged };
}

/** Runs one server change, naming the consumer and the action when the server refuses it. */
async function change(definition: ConsumerDefinition, action: string, run: () => Promise<unknown>) {
  try {
    await run();
  } catch (error) {
    throw new ConsumerUpdateError(definition.stream, definition.name, action, { cause: error });
  }
}

/**
 * Creates the consumers that do not exist (their streams must). An existing consumer with the
 * definition's settings is left as it is. One that differs is changed only as `options` allow,
 * else nothing at all is created, changed or deleted and a `ConsumerSettingsDifferError` lists
 * every difference. Safe to run any number of times.
 *
 * Reading first matters more than for streams: on nats-server 2.9 creating a durable that exists
 * with other settings silently updates it (2.10 refuses), so `add` alone would change someone's
 * consumer without asking.
 */
export async function ensureConsumers(
  access: NatsAccess | string | string[],
  definitions: readonly ConsumerDefinition[],
  options: EnsureConsumersOptions = {},
): Promise<EnsureConsumersResult> {
  const connection = await connect({ ...connectionOptions(access), name: 'order-saga-setup' });
  try {
    const jsm = await jetstreamManager(connection);
    const { missing, differing, unchanged } = await readConsumers(jsm, definitions);
    const differences = differing.flatMap((entry) => entry.differences);
    const allowed = (difference: ConsumerDifference) =>
      options.update === true && (difference.inPlace || options.recreate === true);
    if (!differences.every(allowed)) throw new ConsumerSettingsDifferError(differences);

    const updated: string[] = [];
    const recreated: string[] = [];
    for (const { definition, differences: found } of differing) {
      if (found.every((difference) => difference.inPlace)) {
        await change(definition, 'update', () =>
          jsm.consumers.update(definition.stream, definition.name, updatableConfigOf(definition)),
        );
        updated.push(definition.name);
      } else {
        await change(definition, 'delete', () => jsm.consumers.delete(definition.stream, definition.name));
        await change(definition, 'create', () => jsm.consumers.add(definition.stream, configOf(definition)));
        recreated.push(definition.name);
      }
    }
    for (const definition of missing)
      await change(definition, 'create', () => jsm.consumers.add(definition.stream, configOf(definition)));
    return { created: missing.map((definition) => definition.name), updated, recreated, unchanged };
  } finally {
    await connection.close();
  }
}
