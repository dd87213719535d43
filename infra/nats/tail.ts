import {
  DeliverPolicy,
  jetstream,
  JetStreamApiCodes,
  JetStreamApiError,
  type Consumer,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { parseEvent } from '../../events/envelope.ts';
import { STREAMS, type StreamName } from '../../events/subjects.ts';
import { natsAccessFromEnv, withoutPassword, type NatsAccess } from '../../shared/nats-access.ts';
import { connectionOptions } from '../../shared/nats.ts';
import { EXIT_CODES } from '../local/preflight.ts';
import { DEFAULT_NATS } from '../local/processes.ts';
import { LOCAL_RUNTIME_INFO_FILE, LocalRuntimeInfoSchema } from '../local/runtime-info.ts';
import { formatEventLine, formatUndecodableLine, type LineOptions } from './event-line.ts';

/**
 * A live, readable view of the domain events:
 *
 *   npm run events:tail -- [--order ID] [--subject PATTERN] [--since 10m | --all]
 *
 * One ephemeral ordered consumer per stream (in memory, removed by the server when the tail stops),
 * so nothing durable is left behind. From new messages on by default; `--since` (`30s`, `10m`, `2h`,
 * `1d` or an ISO time) or `--all` first prints what the streams hold, merged by event time, then
 * follows. NATS: NATS_URL (and NATS_CREDS, NATS_TLS_CA), else the running `npm start`'s, else
 * nats://127.0.0.1:4222. Exits 0 on Ctrl-C, 2 on bad flags, 3 when NATS or a stream is not there.
 */

const PREFIX = 'events:tail';
const USAGE = 'usage: npm run events:tail -- [--order ID] [--subject PATTERN] [--since 10m|ISO-TIME | --all]';

/** Bad flags: the message is one sentence. */
export class TailUsageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TailUsageError';
  }
}

export type TailStart = { kind: 'new' } | { kind: 'all' } | { kind: 'since'; time: Date };

export interface TailOptions {
  /** The CloudEvent `subject`: an orderId (or, for `inventory.low_stock`, a sku). */
  order?: string | undefined;
  /** A NATS subject pattern (`*` one token, `>` the rest). */
  subject?: string | undefined;
  start: TailStart;
}

/** `order.*`, `*.cancelled`, `payment.>`: tokens of no blanks, `*` alone in its token, `>` last. */
const SubjectPatternSchema = z.string().refine(
  (pattern) => {
    const tokens = pattern.split('.');
    return tokens.every(
      (token, index) =>
        token.length > 0 &&
        !/\s/.test(token) &&
        (!/[*>]/.test(token) || token === '*' || (token === '>' && index === tokens.length - 1)),
    );
  },
  { message: 'is not a NATS subject pattern (e.g. order.*, *.cancelled, payment.>)' },
);

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `10m` before `now`, or an ISO 8601 time. */
export function parseSince(text: string, now: Date): Date {
  const relative = /^(\d+)([smhd])$/.exec(text);
  if (relative)
    return new Date(now.getTime() - Number(relative[1]) * UNIT_MS[relative[2] as keyof typeof UNIT_MS]);
  if (z.iso.datetime({ offset: true }).safeParse(text).success || z.iso.date().safeParse(text).success)
    return new Date(text);
  throw new TailUsageError(`--since ${text} is neither a duration (30s, 10m, 2h, 1d) nor an ISO time`);
}

/** The command line; throws a TailUsageError on anything it does not understand. */
export function parseTailArgs(args: readonly string[], now: Date = new Date()): TailOptions {
  let values: {
    order?: string | undefined;
    subject?: string | undefined;
    since?: string | undefined;
    all?: boolean | undefined;
  };
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: {
        order: { type: 'string' },
        subject: { type: 'string' },
        since: { type: 'string' },
        all: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new TailUsageError(error instanceof Error ? error.message : String(error), { cause: error });
  }
  if (values.order !== undefined && values.order.trim() === '')
    throw new TailUsageError('--order needs an id');
  if (values.subject !== undefined) {
    if (!SubjectPatternSchema.safeParse(values.subject).success)
      throw new TailUsageError(
        `--subject ${values.subject} is not a NATS subject pattern (e.g. order.*, *.cancelled, payment.>)`,
      );
    if (Object.values(STREAMS).every((subjects) => !subjectsIntersect(values.subject!, subjects)))
      throw new TailUsageError(
        `--subject ${values.subject} matches none of the streams' subjects (${Object.values(STREAMS).join(', ')})`,
      );
  }
  if (values.all && values.since !== undefined)
    throw new TailUsageError('--since and --all exclude each other');
  const start: TailStart = values.all
    ? { kind: 'all' }
    : values.since !== undefined
      ? { kind: 'since', time: parseSince(values.since, now) }
      : { kind: 'new' };
  return { order: values.order, subject: values.subject, start };
}

/** Whether `subject` (no wildcards) matches `pattern`. */
export function subjectMatches(pattern: string, subject: string): boolean {
  const wanted = pattern.split('.');
  const tokens = subject.split('.');
  for (const [index, token] of wanted.entries()) {
    if (token === '>') return tokens.length > index;
    if (index >= tokens.length || (token !== '*' && token !== tokens[index])) return false;
  }
  return wanted.length === tokens.length;
}

/** Whether some subject matches both patterns. */
function subjectsIntersect(a: string, b: string): boolean {
  const left = a.split('.');
  const right = b.split('.');
  for (let index = 0; index < Math.max(left.length, right.length); index++) {
    const [x, y] = [left[index], right[index]];
    if (x === '>' || y === '>') return x !== undefined && y !== undefined;
    if (x === undefined || y === undefined) return false;
    if (x !== '*' && y !== '*' && x !== y) return false;
  }
  return true;
}

/** Whether every subject `pattern` matches is one `of` matches too. */
function subjectIsWithin(pattern: string, of: string): boolean {
  const inner = pattern.split('.');
  const outer = of.split('.');
  for (const [index, token] of outer.entries()) {
    if (token === '>') return inner.length > index;
    const candidate = inner[index];
    if (
      candidate === undefined ||
      candidate === '>' ||
      (token !== '*' && (candidate === '*' || candidate !== token))
    )
      return false;
  }
  return inner.length === outer.length;
}

/**
 * Per stream, the filter the server applies, or none when the pattern cannot match the stream.
 * The server filters on the pattern itself when the stream's subjects hold all it matches (one
 * filter subject, as nats-server 2.9 allows); otherwise on the stream's subjects, and the tail
 * matches the pattern itself.
 */
export function streamFilters(pattern: string | undefined): Partial<Record<StreamName, string>> {
  const filters: Partial<Record<StreamName, string>> = {};
  for (const [stream, subjects] of Object.entries(STREAMS) as [StreamName, string][]) {
    if (pattern === undefined) filters[stream] = subjects;
    else if (subjectIsWithin(pattern, subjects)) filters[stream] = pattern;
    else if (subjectsIntersect(pattern, subjects)) filters[stream] = subjects;
  }
  return filters;
}

/** What one stored message becomes: a line to print, or nothing when the filters leave it out. */
export function lineFor(
  message: { subject: string; streamSequence: number; time: Date; json(): unknown },
  options: Pick<TailOptions, 'order' | 'subject'>,
  lineOptions: LineOptions,
): { line: string; at: number } | undefined {
  if (options.subject !== undefined && !subjectMatches(options.subject, message.subject)) return undefined;
  let event;
  try {
    event = parseEvent(message.json());
  } catch (error) {
    // An undecodable message has no order to filter by: show it, it is what a person tails for.
    return { line: formatUndecodableLine(message, error, lineOptions), at: message.time.getTime() };
  }
  if (options.order !== undefined && event.subject !== options.order) return undefined;
  return { line: formatEventLine(event, lineOptions), at: Date.parse(event.time) };
}

/**
 * The history printed before following: held until every stream has delivered what it held when
 * the tail started, then printed in event-time order (the streams deliver side by side). When no
 * message comes for `idleMs` while a stream still counts pending ones (they aged out meanwhile),
 * the history is printed anyway: it is never held back for good.
 */
export class Backlog {
  readonly #waiting: Set<StreamName>;
  #lines: { at: number; stream: number; seq: number; line: string }[] = [];
  readonly #print: (line: string) => void;
  readonly #idleMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(streams: StreamName[], print: (line: string) => void, idleMs = 2000) {
    this.#waiting = new Set(streams);
    this.#print = print;
    this.#idleMs = idleMs;
    this.#flushIfDone();
  }

  /** `pending`: what the stream still holds after this message (0 once caught up). */
  add(stream: StreamName, seq: number, entry: { line: string; at: number } | undefined, pending: number) {
    if (!this.#waiting.has(stream)) {
      if (entry) this.#print(entry.line);
      return;
    }
    if (entry) this.#lines.push({ ...entry, stream: Object.keys(STREAMS).indexOf(stream), seq });
    if (pending === 0) this.#waiting.delete(stream);
    this.#flushIfDone();
  }

  #flushIfDone() {
    clearTimeout(this.#timer);
    if (this.#waiting.size > 0) {
      this.#timer = setTimeout(() => {
        this.#waiting.clear();
        this.#flushIfDone();
      }, this.#idleMs);
      this.#timer.unref();
      return;
    }
    this.#lines.sort((a, b) => a.at - b.at || a.stream - b.stream || a.seq - b.seq);
    for (const { line } of this.#lines) this.#print(line);
    this.#lines = [];
  }
}

/** NATS_URL, else the running `npm start`'s server (it may have started one on any port), else 4222. */
export function tailNatsAccess(
  env: NodeJS.ProcessEnv,
  runtimeInfoFile = LOCAL_RUNTIME_INFO_FILE,
): NatsAccess {
  if (env.NATS_URL?.trim()) return natsAccessFromEnv(env);
  return natsAccessFromEnv(env, runningRuntimeNatsUrl(runtimeInfoFile) ?? DEFAULT_NATS.url);
}

function runningRuntimeNatsUrl(file: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined; // No npm start running here.
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined; // Half written or damaged: npm start rewrites it whole when it is ready.
  }
  const info = LocalRuntimeInfoSchema.safeParse(json);
  if (!info.success) return undefined;
  try {
    process.kill(info.data.pid, 0);
  } catch {
    return undefined; // A stale file: that npm start is gone.
  }
  return info.data.natsUrl;
}

function startOptions(start: TailStart) {
  if (start.kind === 'all') return { deliver_policy: DeliverPolicy.All };
  if (start.kind === 'since') return { opt_start_time: start.time.toISOString() };
  return { deliver_policy: DeliverPolicy.New };
}

const describeStart = (start: TailStart) =>
  start.kind === 'all'
    ? 'from the first stored message'
    : start.kind === 'since'
      ? `from ${start.time.toISOString()}`
      : 'from new messages on';

function fail(code: number, message: string): never {
  console.error(`${PREFIX}: ${message}`);
  process.exit(code);
}

/** Creates the stream's ordered consumer; a missing stream or JetStream is a missing prerequisite. */
async function orderedConsumer(
  connection: NatsConnection,
  stream: StreamName,
  filter: string,
  start: TailStart,
  url: string,
) {
  try {
    return await jetstream(connection).consumers.get(stream, {
      filter_subjects: filter, // a string: one filter subject, which nats-server 2.9 understands
      ...startOptions(start),
      // Gone 30 s after the tail stops, also when it is killed outright.
      inactive_threshold: 30_000,
    });
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)
      fail(
        EXIT_CODES.missingPrerequisite,
        `stream ${stream} does not exist at ${url}; fix: npm run nats:setup (npm start creates it too)`,
      );
    fail(
      EXIT_CODES.missingPrerequisite,
      `cannot read stream ${stream} at ${url}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

async function main(): Promise<void> {
  let options: TailOptions;
  try {
    options = parseTailArgs(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof TailUsageError)) throw error;
    fail(EXIT_CODES.badConfiguration, `${error.message}; ${USAGE}`);
  }
  let access: NatsAccess;
  try {
    access = tailNatsAccess(process.env);
  } catch (error) {
    fail(EXIT_CODES.badConfiguration, error instanceof Error ? error.message : String(error));
  }
  const url = access.servers.map(withoutPassword).join(', ');
  let connection: NatsConnection;
  try {
    connection = await connect({
      ...connectionOptions(access),
      name: 'order-saga-tail',
      timeout: 3000,
      maxReconnectAttempts: -1,
    });
  } catch (error) {
    fail(
      EXIT_CODES.missingPrerequisite,
      `NATS does not answer at ${url} (${error instanceof Error ? error.message : String(error)}); set NATS_URL, or start it: npm start`,
    );
  }

  const lineOptions: LineOptions = { colors: process.stdout.isTTY === true && process.stdout.hasColors() };
  const filters = Object.entries(streamFilters(options.subject)) as [StreamName, string][];
  const consumers: [StreamName, Consumer][] = [];
  for (const [stream, filter] of filters)
    consumers.push([stream, await orderedConsumer(connection, stream, filter, options.start, url)]);

  const pendingAtStart = await Promise.all(
    consumers.map(async ([, consumer]) => (await consumer.info(true)).num_pending),
  );
  const history = new Backlog(
    consumers.filter((_, index) => pendingAtStart[index]! > 0).map(([stream]) => stream),
    (line) => console.log(line),
  );

  const iterators = await Promise.all(consumers.map(([, consumer]) => consumer.consume()));
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.all(iterators.map((iterator) => iterator.close()));
    // The server removes them after their inactive threshold anyway; deleting is only quicker, and
    // a user allowed to create but not to delete consumers may not.
    await Promise.all(consumers.map(([, consumer]) => consumer.delete().catch(() => false)));
    await connection.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  const streams = consumers.map(([stream]) => stream).join(', ');
  const which = [options.order && `order ${options.order}`, options.subject && `subjects ${options.subject}`]
    .filter(Boolean)
    .join(', ');
  console.error(
    `${PREFIX}: following ${streams} at ${url}${which ? ` (${which})` : ''} ${describeStart(options.start)}; Ctrl-C stops`,
  );

  await Promise.all(
    iterators.map(async (iterator, index) => {
      const stream = consumers[index]![0];
      for await (const message of iterator as AsyncIterable<JsMsg>) {
        const entry = lineFor(
          {
            subject: message.subject,
            streamSequence: message.seq,
            time: message.time,
            json: () => message.json(),
          },
          options,
          lineOptions,
        );
        history.add(stream, message.seq, entry, message.info.pending);
      }
    }),
  ).catch((error: unknown) => {
    // Connection gone for good, consumer deleted under it: one line, not a stack.
    fail(EXIT_CODES.failure, `stopped following: ${error instanceof Error ? error.message : String(error)}`);
  });
}

if (import.meta.main) await main();
