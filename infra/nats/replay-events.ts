import {
  DynamoDBClient,
  ResourceNotFoundException,
  type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  paginateQuery,
  paginateScan,
  type QueryCommandInput,
  type ScanCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import { millis, type NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { parseArgs } from 'node:util';
import { STREAMS, type StreamName } from '../../events/subjects.ts';
import { ConfigError } from '../../shared/errors.ts';
import { natsAccessFromEnv, withoutPassword, type NatsAccess } from '../../shared/nats-access.ts';
import { connectEventPublisher, connectionOptions, type EventPublisher } from '../../shared/nats.ts';
import { OUTBOX_KIND } from '../../shared/outbox/layout.ts';
import { MalformedOutboxItemError, storedEvent, type StoredEvent } from '../../shared/outbox/read.ts';
import { EXIT_CODES } from '../local/preflight.ts';
import { clientConfig, OPS_TARGET_OPTIONS, OpsTargetError, resolveOpsTarget } from '../ops/target.ts';
import { parseSince, subjectMatches, TailUsageError } from './tail.ts';

/*
 * `npm run events:replay`: republishes outbox items (the tables keep them 7 days) to their streams,
 * per aggregate in their original order, with their original ids, sequences and bodies. Before it
 * publishes, it reads which ids the streams already hold and leaves those out, so a replay is
 * idempotent beyond JetStream's duplicate window. An event older than a stream's max age
 * (24 h) is no longer there and is stored again; consumers drop it by (source, subject, sequence).
 */

const PREFIX = 'events:replay';
export const USAGE =
  'usage: npm run events:replay -- --order ID | --since 30m|2h|1d|ISO-TIME | --all [--dry-run] [--outputs <cdk outputs json> [--stack <name>]]';

/**
 * How far before the earliest event to look for it on a stream: a message is stored after its event
 * was committed, unless the clocks of the writer and the NATS server disagree by more than this.
 */
export const CLOCK_SKEW_MARGIN_MS = 5 * 60_000;

/** Bad flags or configuration: the message is one sentence (exit 2). */
export class ReplayUsageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ReplayUsageError';
  }
}

/** Something the replay needs is not there: the runtime, NATS, a stream, a table (exit 3). */
export class ReplayPrerequisiteError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ReplayPrerequisiteError';
  }
}

export type ReplaySelection =
  | { kind: 'order'; orderId: string; since?: Date | undefined }
  | { kind: 'since'; since: Date }
  | { kind: 'all' };

export interface ReplayArgs {
  selection: ReplaySelection;
  dryRun: boolean;
  outputs?: string | undefined;
  stack?: string | undefined;
}

/** The command line; `undefined` for `--help`. Throws a ReplayUsageError on anything else amiss. */
export function parseReplayArgs(argv: readonly string[], now: Date = new Date()): ReplayArgs | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        ...OPS_TARGET_OPTIONS,
        order: { type: 'string' },
        since: { type: 'string' },
        all: { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new ReplayUsageError(error instanceof Error ? error.message : String(error), { cause: error });
  }
  if (values.help) return undefined;
  if (values.order !== undefined && values.order.trim() === '')
    throw new ReplayUsageError('--order needs an id');
  if (values.all && (values.order !== undefined || values.since !== undefined))
    throw new ReplayUsageError('--all replays everything the outbox holds: not with --order or --since');
  let since: Date | undefined;
  if (values.since !== undefined) {
    try {
      since = parseSince(values.since, now);
    } catch (error) {
      if (!(error instanceof TailUsageError)) throw error;
      throw new ReplayUsageError(error.message, { cause: error });
    }
  }
  if (values.order === undefined && since === undefined && !values.all)
    throw new ReplayUsageError(
      'name what to replay: --order ID, --since TIME, or --all for everything the outbox holds',
    );
  const selection: ReplaySelection =
    values.order !== undefined
      ? { kind: 'order', orderId: values.order.trim(), since }
      : since !== undefined
        ? { kind: 'since', since }
        : { kind: 'all' };
  return { selection, dryRun: values['dry-run'], outputs: values.outputs, stack: values.stack };
}

export interface TableNames {
  orders: string;
  inventory: string;
  payments: string;
}

export interface ReplayTarget {
  /** For the banner: `npm start`, `stack X in file`, or `tables from the environment`. */
  description: string;
  dynamodb: DynamoDBClientConfig;
  tableNames: TableNames;
  nats: NatsAccess;
}

const TABLE_VARIABLES = {
  orders: 'ORDERS_TABLE_NAME',
  inventory: 'INVENTORY_TABLE_NAME',
  payments: 'PAYMENTS_TABLE_NAME',
} as const satisfies Record<keyof TableNames, string>;

/**
 * The tables and NATS to work on. Tables: all three `*_TABLE_NAME` variables (the SDK's own
 * environment then finds region, endpoint and credentials), else a deployed stack's outputs
 * (`--outputs`, as every infra/ops script takes them), else the running `npm start`. NATS:
 * `natsAccessFromEnv` (NATS_URL, NATS_CREDS, NATS_TLS_CA), else the running `npm start`'s server.
 */
export function resolveReplayTarget(
  args: Pick<ReplayArgs, 'outputs' | 'stack'>,
  env: NodeJS.ProcessEnv,
  runtimeInfoFile?: string,
): ReplayTarget {
  const given = Object.values(TABLE_VARIABLES).filter((name) => env[name]?.trim());
  if (given.length > 0) {
    const missing = Object.values(TABLE_VARIABLES).filter((name) => !env[name]?.trim());
    if (missing.length > 0)
      throw new ReplayUsageError(
        `${given.join(', ')} set but not ${missing.join(', ')}: give all three tables`,
      );
    if (args.outputs !== undefined)
      throw new ReplayUsageError(
        'the tables come from the *_TABLE_NAME variables or from --outputs, not both',
      );
    const endpoint = env.AWS_ENDPOINT_URL_DYNAMODB || env.AWS_ENDPOINT_URL;
    const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
    const tableNames = {
      orders: env.ORDERS_TABLE_NAME!.trim(),
      inventory: env.INVENTORY_TABLE_NAME!.trim(),
      payments: env.PAYMENTS_TABLE_NAME!.trim(),
    };
    // NATS_URL wins; without it, the server of an npm start that is running, if one is.
    let natsUrl: string | undefined;
    if (!env.NATS_URL?.trim()) {
      try {
        natsUrl = resolveOpsTarget({}, env, runtimeInfoFile === undefined ? {} : { runtimeInfoFile }).natsUrl;
      } catch (error) {
        if (!(error instanceof OpsTargetError)) throw error;
      }
    }
    return {
      description: 'the tables in ORDERS_TABLE_NAME, INVENTORY_TABLE_NAME, PAYMENTS_TABLE_NAME',
      dynamodb: { ...(endpoint ? { endpoint } : {}), ...(region ? { region } : {}) },
      tableNames,
      nats: natsAccess(env, natsUrl),
    };
  }
  let target;
  try {
    target = resolveOpsTarget(args, env, runtimeInfoFile === undefined ? {} : { runtimeInfoFile });
  } catch (error) {
    if (!(error instanceof OpsTargetError)) throw error;
    // Locally the target is a running npm start: its absence is a missing prerequisite. A bad
    // outputs file is a bad flag.
    if (args.outputs === undefined) throw new ReplayPrerequisiteError(error.message, { cause: error });
    throw new ReplayUsageError(error.message, { cause: error });
  }
  return {
    description:
      target.kind === 'local'
        ? 'npm start'
        : `the stack ${args.stack ? `${args.stack} ` : ''}in ${args.outputs}`,
    dynamodb: clientConfig(target, 'dynamodb'),
    tableNames: target.tableNames,
    nats: natsAccess(env, target.natsUrl),
  };
}

function natsAccess(env: NodeJS.ProcessEnv, fallbackUrl: string | undefined): NatsAccess {
  try {
    return natsAccessFromEnv(env, fallbackUrl);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ReplayUsageError(
      error instanceof ConfigError ? `${message}: give the NATS server of the streams` : message,
      { cause: error },
    );
  }
}

/** An outbox event found in a table. */
export interface ReplayCandidate extends StoredEvent {
  table: string;
  /** The item's `sequence`, else the event's; undefined for events from before sequences. */
  position: number | undefined;
}

/** An item that is not an outbox event one can publish: reported, left where it is. */
export interface UnreadableItem {
  table: string;
  pk: string;
  sk: string;
  problem: string;
}

const ITEM_NAMES = { '#kind': 'kind', '#sequence': 'sequence', '#event': 'event' };
const PROJECTION = 'pk, sk, #kind, #sequence, #event';

/** The queries (`--order`) or scans (`--since`, `--all`) that find the selection's outbox items. */
function requests(
  tableNames: TableNames,
  selection: ReplaySelection,
): Array<{ table: string } & ({ query: QueryCommandInput } | { scan: ScanCommandInput })> {
  if (selection.kind === 'order') {
    const id = selection.orderId;
    // PRODUCT#: a consumer's gap report names the sku for inventory.low_stock as its "order".
    const aggregates: Array<[string, string]> = [
      [tableNames.orders, `ORDER#${id}`],
      [tableNames.inventory, `RESERVATION#${id}`],
      [tableNames.inventory, `PRODUCT#${id}`],
      [tableNames.payments, `PAYMENT#${id}`],
    ];
    return aggregates.map(([table, pk]) => ({
      table,
      query: {
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :events)',
        FilterExpression: '#kind = :kind',
        ProjectionExpression: PROJECTION,
        ExpressionAttributeNames: ITEM_NAMES,
        ExpressionAttributeValues: { ':pk': pk, ':events': 'EVENT#', ':kind': OUTBOX_KIND },
      },
    }));
  }
  // The sort key holds the event's time (ISO, UTC): a coarse bound a second early, exact in code.
  const from =
    selection.kind === 'since'
      ? `EVENT#${new Date(selection.since.getTime() - 1000).toISOString()}`
      : undefined;
  return Object.values(tableNames).map((table) => ({
    table,
    scan: {
      TableName: table,
      FilterExpression: `#kind = :kind AND begins_with(sk, :events)${from ? ' AND sk >= :from' : ''}`,
      ProjectionExpression: PROJECTION,
      ExpressionAttributeNames: ITEM_NAMES,
      ExpressionAttributeValues: {
        ':kind': OUTBOX_KIND,
        ':events': 'EVENT#',
        ...(from ? { ':from': from } : {}),
      },
    },
  }));
}

/** The outbox events of the selection, in no particular order, and the items that are not readable. */
export async function readOutbox(
  client: DynamoDBDocumentClient,
  tableNames: TableNames,
  selection: ReplaySelection,
): Promise<{ events: ReplayCandidate[]; unreadable: UnreadableItem[] }> {
  const events: ReplayCandidate[] = [];
  const unreadable: UnreadableItem[] = [];
  const since = selection.kind === 'all' ? undefined : selection.since;
  for (const request of requests(tableNames, selection)) {
    const pages =
      'query' in request ? paginateQuery({ client }, request.query) : paginateScan({ client }, request.scan);
    try {
      for await (const page of pages) {
        for (const item of page.Items ?? []) {
          const pk = String(item.pk);
          const sk = String(item.sk);
          if (typeof item.event !== 'string') {
            unreadable.push({ table: request.table, pk, sk, problem: 'it has no event text' });
            continue;
          }
          let stored: StoredEvent;
          try {
            stored = storedEvent(pk, item.event, `${request.table} ${pk} ${sk}`);
          } catch (error) {
            if (!(error instanceof MalformedOutboxItemError)) throw error;
            unreadable.push({ table: request.table, pk, sk, problem: error.message });
            continue;
          }
          if (since !== undefined && !(Date.parse(stored.time) >= since.getTime())) continue;
          const position =
            typeof item.sequence === 'number' && Number.isFinite(item.sequence)
              ? item.sequence
              : stored.sequence !== undefined
                ? Number(stored.sequence)
                : undefined;
          events.push({ ...stored, table: request.table, position });
        }
      }
    } catch (error) {
      if (error instanceof ResourceNotFoundException)
        throw new ReplayPrerequisiteError(`table ${request.table} does not exist`, { cause: error });
      if (isConnectionRefused(error))
        throw new ReplayPrerequisiteError(`DynamoDB does not answer (${(error as Error).message})`, {
          cause: error,
        });
      throw error;
    }
  }
  return { events, unreadable };
}

function isConnectionRefused(error: unknown): boolean {
  for (let cause = error; cause instanceof Error; cause = cause.cause)
    if ((cause as NodeJS.ErrnoException).code === 'ECONNREFUSED') return true;
  return false;
}

export interface ReplayAggregate {
  aggregate: string;
  events: ReplayCandidate[];
}

const byTimeThenId = (a: ReplayCandidate, b: ReplayCandidate) =>
  Date.parse(a.time) - Date.parse(b.time) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/**
 * The order to publish in: per aggregate by sequence, after its events from before sequences (by
 * time, then id); aggregates in the order of their first event's time.
 */
export function replayOrder(events: readonly ReplayCandidate[]): ReplayAggregate[] {
  const groups = new Map<string, ReplayCandidate[]>();
  for (const event of events) {
    const group = groups.get(event.aggregate);
    if (group) group.push(event);
    else groups.set(event.aggregate, [event]);
  }
  const aggregates = [...groups].map(([aggregate, group]) => {
    const unsequenced = group.filter((event) => event.position === undefined).sort(byTimeThenId);
    const sequenced = group
      .filter((event) => event.position !== undefined)
      .sort((a, b) => a.position! - b.position! || byTimeThenId(a, b));
    const first = Math.min(...group.map((event) => Date.parse(event.time)));
    return { aggregate, events: [...unsequenced, ...sequenced], first };
  });
  aggregates.sort(
    (a, b) => a.first - b.first || (a.aggregate < b.aggregate ? -1 : a.aggregate > b.aggregate ? 1 : 0),
  );
  return aggregates.map(({ aggregate, events: ordered }) => ({ aggregate, events: ordered }));
}

/** The stream a subject is stored in. */
export function streamOf(subject: string): StreamName {
  const stream = (Object.keys(STREAMS) as StreamName[]).find((name) =>
    subjectMatches(STREAMS[name], subject),
  );
  if (!stream) throw new Error(`no stream captures ${subject}`);
  return stream;
}

/** What a stream holds of interest to a replay: the ids it stores from `from` on, and its max age. */
export interface StreamHoldings {
  ids: Set<string>;
  maxAgeMs: number;
}

/**
 * The `Nats-Msg-Id`s a stream stores from `from` on (by stored time), read with an ephemeral ordered
 * consumer that delivers headers only. A stream that goes quiet for `idleMs` before it delivered
 * what it counted (messages aged out meanwhile) has been read to its end.
 */
export async function streamHoldings(
  connection: NatsConnection,
  stream: StreamName,
  from: Date,
  idleMs = 5_000,
): Promise<StreamHoldings> {
  const jsm = await jetstreamManager(connection);
  let info;
  try {
    info = await jsm.streams.info(stream);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)
      throw new ReplayPrerequisiteError(
        `stream ${stream} does not exist; fix: npm run nats:setup (npm start creates it too)`,
        { cause: error },
      );
    throw error;
  }
  const holdings: StreamHoldings = { ids: new Set(), maxAgeMs: millis(info.config.max_age) };
  if (info.state.messages === 0) return holdings;
  const consumer = await jetstream(connection).consumers.get(stream, {
    opt_start_time: from.toISOString(),
    headers_only: true,
    // Gone 30 s after the replay, also when it is killed half-way.
    inactive_threshold: 30_000,
  });
  try {
    if ((await consumer.info(true)).num_pending === 0) return holdings;
    const messages = await consumer.consume({ max_messages: 512 });
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => void messages.close(), idleMs);
    };
    arm();
    let complete = false;
    try {
      for await (const message of messages) {
        arm();
        const id = message.headers?.get('Nats-Msg-Id');
        if (id) holdings.ids.add(id);
        if (message.info.pending === 0) {
          complete = true;
          break;
        }
      }
    } finally {
      clearTimeout(idle);
      await messages.close();
    }
    // Closed by the idle timer: only a read that reached the end may decide what is missing, or an
    // event already stored would be published again.
    if (!complete && (await consumer.info(true)).num_pending > 0)
      throw new Error(`stream ${stream} stopped answering before its ids were read to the end; try again`);
    return holdings;
  } finally {
    // The server removes it after its inactive threshold anyway; deleting is only quicker.
    await consumer.delete().catch(() => false);
  }
}

export interface ReplayDeps {
  dynamodb: DynamoDBDocumentClient;
  tableNames: TableNames;
  /** A connection to read the streams with. */
  connection: NatsConnection;
  publisher: EventPublisher;
  now?: Date;
}

export interface ReplayReport {
  found: number;
  orders: number;
  skus: number;
  alreadyOnStreams: number;
  published: number;
  /** Published, but JetStream answered "duplicate": the bridge (or another replay) was quicker. */
  duplicates: number;
  /** Published and older than their stream's max age: consumers saw them before, if ever. */
  olderThanStreams: number;
  unreadable: UnreadableItem[];
}

/**
 * Replays the selection: reads the outbox, reads what the streams hold, publishes the rest in order
 * (or, on a dry run, lists it). `out` gets one line per aggregate published (per event on a dry run).
 */
export async function replayEvents(
  deps: ReplayDeps,
  selection: ReplaySelection,
  options: { dryRun?: boolean; out?: (line: string) => void } = {},
): Promise<ReplayReport> {
  const out = options.out ?? (() => {});
  const now = deps.now ?? new Date();
  const { events, unreadable } = await readOutbox(deps.dynamodb, deps.tableNames, selection);
  const aggregates = replayOrder(events);
  const report: ReplayReport = {
    found: events.length,
    orders: new Set(events.filter((e) => !e.aggregate.startsWith('PRODUCT#')).map((e) => e.subject)).size,
    skus: new Set(events.filter((e) => e.aggregate.startsWith('PRODUCT#')).map((e) => e.subject)).size,
    alreadyOnStreams: 0,
    published: 0,
    duplicates: 0,
    olderThanStreams: 0,
    unreadable,
  };
  if (events.length === 0) return report;

  const earliest = new Map<StreamName, number>();
  for (const event of events) {
    const stream = streamOf(event.type);
    earliest.set(stream, Math.min(earliest.get(stream) ?? Infinity, Date.parse(event.time)));
  }
  const holdings = new Map<StreamName, StreamHoldings>();
  for (const [stream, time] of earliest)
    holdings.set(
      stream,
      await streamHoldings(deps.connection, stream, new Date(time - CLOCK_SKEW_MARGIN_MS)),
    );

  for (const { aggregate, events: ordered } of aggregates) {
    const done: string[] = [];
    for (const event of ordered) {
      const held = holdings.get(streamOf(event.type))!;
      if (held.ids.has(event.id)) {
        report.alreadyOnStreams += 1;
        continue;
      }
      const old = now.getTime() - Date.parse(event.time) > held.maxAgeMs;
      const label = `${event.type} ${event.position === undefined ? '(no sequence)' : `#${event.position}`}`;
      if (options.dryRun) {
        out(
          `would publish ${aggregate} ${label} id ${event.id} ${event.time}${old ? ' (older than its stream)' : ''}`,
        );
      } else {
        const ack = await deps.publisher.publish({ subject: event.type, id: event.id, body: event.body });
        if (ack.duplicate) report.duplicates += 1;
        done.push(label);
      }
      report.published += 1;
      if (old) report.olderThanStreams += 1;
    }
    if (done.length > 0) out(`published ${aggregate}: ${done.join(', ')}`);
  }
  return report;
}

const plural = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`;

/** `replay: 12 events found (3 orders), 9 already on the streams, 3 published`, and what to know about it. */
export function formatReport(report: ReplayReport, dryRun = false): string[] {
  const what = [
    plural(report.orders, 'order', 'orders'),
    ...(report.skus ? [plural(report.skus, 'sku', 'skus')] : []),
  ];
  const lines = [
    `replay: ${plural(report.found, 'event', 'events')} found (${what.join(', ')}), ${report.alreadyOnStreams} already on the streams, ${report.published} ${dryRun ? 'to publish (dry run: nothing published)' : 'published'}`,
  ];
  if (report.duplicates > 0)
    lines.push(
      `replay: ${report.duplicates} of the published had just been stored (by the bridge?): JetStream kept them once (duplicate window)`,
    );
  if (report.olderThanStreams > 0)
    lines.push(
      `replay: ${report.olderThanStreams} ${dryRun ? 'to publish are' : 'published were'} older than their stream's max age, so no longer on it: stored again; consumers that handled them drop them by (source, subject, sequence)`,
    );
  if (report.unreadable.length > 0)
    lines.push(
      `replay: ${plural(report.unreadable.length, 'item', 'items')} not replayable (listed above), left in the tables`,
    );
  return lines;
}

export interface ReplayIo {
  out: (line: string) => void;
  err: (line: string) => void;
  runtimeInfoFile?: string;
  now?: Date;
}

/** The command; resolves to its exit code (0 done, 1 unexpected or items not replayable, 2 usage, 3 missing). */
export async function runReplay(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: ReplayIo = { out: (line) => console.log(line), err: (line) => console.error(line) },
): Promise<number> {
  const fail = (code: number, message: string) => {
    io.err(`${PREFIX}: ${message}`);
    return code;
  };
  let args: ReplayArgs | undefined;
  let target: ReplayTarget;
  try {
    args = parseReplayArgs(argv, io.now);
    if (args === undefined) {
      io.out(USAGE);
      return 0;
    }
    target = resolveReplayTarget(args, env, io.runtimeInfoFile);
  } catch (error) {
    if (error instanceof ReplayUsageError)
      return fail(EXIT_CODES.badConfiguration, `${error.message}; ${USAGE}`);
    if (error instanceof ReplayPrerequisiteError) return fail(EXIT_CODES.missingPrerequisite, error.message);
    throw error;
  }

  const url = target.nats.servers.map(withoutPassword).join(', ');
  const raw = new DynamoDBClient(target.dynamodb);
  let connection: NatsConnection | undefined;
  let publisher: EventPublisher | undefined;
  try {
    try {
      connection = await connect({
        ...connectionOptions(target.nats),
        name: 'order-saga-replay',
        timeout: 3_000,
        maxReconnectAttempts: 0,
      });
      publisher = args.dryRun
        ? undefined
        : await connectEventPublisher(target.nats, { name: 'order-saga-replay' });
    } catch (error) {
      return fail(
        EXIT_CODES.missingPrerequisite,
        `NATS does not answer at ${url} (${error instanceof Error ? error.message : String(error)}); set NATS_URL, or start it: npm start`,
      );
    }
    io.err(`${PREFIX}: outbox of ${target.description}, streams at ${url}${args.dryRun ? ' (dry run)' : ''}`);
    const report = await replayEvents(
      {
        dynamodb: DynamoDBDocumentClient.from(raw),
        tableNames: target.tableNames,
        connection,
        publisher: publisher ?? refusingPublisher,
        ...(io.now ? { now: io.now } : {}),
      },
      args.selection,
      { dryRun: args.dryRun, out: io.out },
    );
    for (const item of report.unreadable) io.err(`${PREFIX}: not replayable: ${item.problem}`);
    for (const line of formatReport(report, args.dryRun)) io.out(line);
    return report.unreadable.length > 0 ? EXIT_CODES.failure : 0;
  } catch (error) {
    if (error instanceof ReplayPrerequisiteError) return fail(EXIT_CODES.missingPrerequisite, error.message);
    throw error;
  } finally {
    await publisher?.close();
    await connection?.close();
    raw.destroy();
  }
}

/** A dry run publishes nothing; should it ever try, it fails loudly. */
const refusingPublisher: EventPublisher = {
  publish: () => Promise.reject(new Error('a dry run publishes nothing')),
  isAlive: () => Promise.resolve(false),
  isClosed: () => true,
  close: () => Promise.resolve(),
};
