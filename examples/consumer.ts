/**
 * A downstream service's consumer, to copy from. Runnable against any NATS with the project's
 * streams and consumers (`npm run nats:setup`):
 *
 *   NATS_URL=nats://127.0.0.1:4222 node examples/consumer.ts [--consumer fulfilment-orders]
 *
 * Every instance started with the same `--consumer` joins that consumer's queue group: JetStream
 * gives each message to one of them. The example's tracker is in memory, so run one instance, or
 * keep the tracker where all instances share it (docs/consuming-events.md). Each message is decoded with the schemas of `events/`, checked
 * against the highest `sequence` seen for its (source, subject), handled, and acknowledged.
 * docs/consuming-events.md explains the choices; `startConsumer` and `SequenceTracker` are what a
 * service takes from here.
 */
import { jetstream, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { parseEvent, type CloudEvent } from '../events/envelope.ts';
import { consumerDefinitions, type ConsumerDefinition } from '../infra/nats/consumers.ts';
import { configOrExit, EXIT_CODES } from '../infra/local/preflight.ts';
import { natsAccessFromEnv, withoutPassword } from '../shared/nats-access.ts';
import { connectionOptions } from '../shared/nats.ts';

/** Sequences from `from` to `to`, both included. */
export interface SequenceRange {
  from: number;
  to: number;
}

/** What an event's sequence says about it, given what was handled before. */
export type SequenceVerdict =
  /** The next one of its (source, subject), or the first this tracker sees. */
  | { kind: 'new' }
  /** Newer than the next one: `missing` were never seen. Handle it, and get the missing ones replayed. */
  | { kind: 'gap'; missing: SequenceRange }
  /** One of a gap's missing sequences, arriving after all (a replay): handle it. */
  | { kind: 'late' }
  /** At or below the highest seen, and not missing: handled already. Ack it, do nothing. */
  | { kind: 'duplicate'; highest: number };

type Sequenced = Pick<CloudEvent, 'source' | 'subject' | 'sequence'>;

interface KeyState {
  highest: number;
  missing: SequenceRange[];
}

/**
 * Dedupe by (source, subject, sequence): per key, the highest sequence handled and the gaps below
 * it. Sound because a consumer's queue group handles its stream one message at a time, in stream
 * order, and one source's events of one subject are all in one stream (consumers.ts).
 *
 * In memory, so only right for one process and forgotten on restart: a real service keeps the same
 * two facts per key in its database, written in the transaction that records the handling, and
 * shared by all its instances (docs/consuming-events.md, "Dedupe").
 */
export class SequenceTracker {
  readonly #keys = new Map<string, KeyState>();

  /** Reads only: call it before handling, `record` after the handling succeeded. */
  check(event: Sequenced): SequenceVerdict {
    const position = Number(event.sequence);
    const state = this.#keys.get(keyOf(event));
    if (state === undefined || position === state.highest + 1) return { kind: 'new' };
    if (position > state.highest)
      return { kind: 'gap', missing: { from: state.highest + 1, to: position - 1 } };
    if (state.missing.some((range) => contains(range, position))) return { kind: 'late' };
    return { kind: 'duplicate', highest: state.highest };
  }

  /** The event was handled: it is a duplicate from now on, and the sequences it skipped are missing. */
  record(event: Sequenced): void {
    const position = Number(event.sequence);
    const key = keyOf(event);
    const state = this.#keys.get(key);
    if (state === undefined) {
      this.#keys.set(key, { highest: position, missing: [] });
    } else if (position > state.highest) {
      if (position > state.highest + 1) state.missing.push({ from: state.highest + 1, to: position - 1 });
      state.highest = position;
    } else {
      state.missing = state.missing.flatMap((range) =>
        contains(range, position) ? without(range, position) : [range],
      );
    }
  }

  /** The sequences of a (source, subject) below its highest that were never handled. */
  missing(source: string, subject: string): SequenceRange[] {
    return [...(this.#keys.get(keyOf({ source, subject }))?.missing ?? [])];
  }
}

// JSON keeps `a/b`+`c` and `a`+`b/c` apart, whatever characters ids hold.
const keyOf = (event: Pick<CloudEvent, 'source' | 'subject'>) =>
  JSON.stringify([event.source, event.subject]);
const contains = (range: SequenceRange, position: number) => range.from <= position && position <= range.to;
const without = (range: SequenceRange, position: number): SequenceRange[] =>
  [
    { from: range.from, to: position - 1 },
    { from: position + 1, to: range.to },
  ].filter((part) => part.from <= part.to);

/** What became of one message; `report` receives it (and the example logs it). */
export type MessageOutcome =
  | { kind: 'handled' | 'ignored' | 'late'; event: CloudEvent }
  | { kind: 'gap'; event: CloudEvent; missing: SequenceRange }
  | { kind: 'duplicate'; event: CloudEvent; highest: number }
  /** The handler threw; `final`: that was the last delivery the consumer allows. */
  | { kind: 'failed'; event: CloudEvent; error: unknown; delivery: number; final: boolean }
  /** Not a valid event of the contract: terminated, never redelivered. */
  | { kind: 'undecodable'; natsSubject: string; streamSequence: number; error: unknown };

export interface ConsumerOptions {
  /** The service's connection; `startConsumer` does not close it. */
  connection: NatsConnection;
  consumer: Pick<ConsumerDefinition, 'stream' | 'name' | 'handles' | 'maxDeliver'>;
  tracker: SequenceTracker;
  /** The service's work. Throw to have the message delivered again (after a growing delay). */
  handle: (event: CloudEvent) => Promise<void> | void;
  /** Default: one log line per outcome (`describeOutcome`). */
  report?: (outcome: MessageOutcome) => void;
}

export interface RunningConsumer {
  /** Stops taking messages once the current one is done. */
  stop(): Promise<void>;
  /** Settles when the consumer stops: rejects when processing failed in a way it cannot go on from. */
  done: Promise<void>;
}

/**
 * Joins the consumer's queue group: the deliver subject and group come from the consumer on the
 * server, so the service hard-codes only the stream and the durable name.
 */
export async function startConsumer(options: ConsumerOptions): Promise<RunningConsumer> {
  const { connection, consumer } = options;
  const report = options.report ?? ((outcome: MessageOutcome) => console.log(describeOutcome(outcome)));
  const pushConsumer = await jetstream(connection).consumers.getPushConsumer(consumer.stream, consumer.name);
  const messages = await pushConsumer.consume();
  const done = (async () => {
    // One at a time: the queue group has one message in flight anyway (max ack pending 1).
    for await (const message of messages) report(await processMessage(message, options));
  })();
  return {
    async stop() {
      await messages.close();
      await done;
    },
    done,
  };
}

/** Decode, dedupe, handle, ack. */
async function processMessage(message: JsMsg, options: ConsumerOptions): Promise<MessageOutcome> {
  let event: CloudEvent;
  try {
    event = parseEvent(message.json());
  } catch (error) {
    // No redelivery makes it valid; JetStream publishes a termination advisory for it. Without a
    // reason: nats-server before 2.10 ignores `+TERM <reason>`, and the message would stay pending.
    message.term();
    return { kind: 'undecodable', natsSubject: message.subject, streamSequence: message.seq, error };
  }
  const verdict = options.tracker.check(event);
  if (verdict.kind === 'duplicate') {
    message.ack();
    return { kind: 'duplicate', event, highest: verdict.highest };
  }
  const acts = options.consumer.handles.includes(event.type);
  try {
    if (acts) await options.handle(event);
  } catch (error) {
    const delivery = message.info.deliveryCount;
    message.nak(Math.min(1000 * 2 ** (delivery - 1), 30_000));
    return { kind: 'failed', event, error, delivery, final: delivery >= options.consumer.maxDeliver };
  }
  options.tracker.record(event);
  message.ack();
  if (verdict.kind === 'gap') return { kind: 'gap', event, missing: verdict.missing };
  if (verdict.kind === 'late') return { kind: 'late', event };
  return { kind: acts ? 'handled' : 'ignored', event };
}

const label = (event: CloudEvent) => `${event.type} ${event.subject} seq ${Number(event.sequence)}`;
const reasonOf = (error: unknown) =>
  error instanceof z.ZodError
    ? error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ')
    : error instanceof Error
      ? error.message
      : String(error);

/** One log line per outcome. */
export function describeOutcome(outcome: MessageOutcome): string {
  switch (outcome.kind) {
    case 'handled':
      return `handled ${label(outcome.event)}`;
    case 'ignored':
      return `not for this service: ${label(outcome.event)}, acked`;
    case 'late':
      return `handled ${label(outcome.event)}, which was missing (replayed)`;
    case 'duplicate':
      return `duplicate ${label(outcome.event)} (highest seen ${outcome.highest}): acked, skipped`;
    case 'gap': {
      const { from, to } = outcome.missing;
      const which = from === to ? `sequence ${from}` : `sequences ${from}-${to}`;
      return `GAP: handled ${label(outcome.event)}, but ${which} of ${outcome.event.source} for ${outcome.event.subject} never arrived: lost on the way, or given up on after max deliver; replay them: npm run events:replay -- --order ${outcome.event.subject}`;
    }
    case 'failed':
      return outcome.final
        ? `FAILED for good ${label(outcome.event)} (delivery ${outcome.delivery}, the last): ${reasonOf(outcome.error)}; the next event of ${outcome.event.subject} will show a gap`
        : `failed ${label(outcome.event)} (delivery ${outcome.delivery}), will be delivered again: ${reasonOf(outcome.error)}`;
    case 'undecodable':
      return `UNDECODABLE message on ${outcome.natsSubject} (stream sequence ${outcome.streamSequence}), terminated: ${reasonOf(outcome.error)}`;
  }
}

/** What each example service would do; a real one writes to its database or calls its provider. */
function exampleWork(service: string) {
  return (event: CloudEvent) => {
    const order = event.subject;
    if (service === 'fulfilment')
      console.log(
        event.type === 'order.completed'
          ? `fulfilment: ship order ${order}`
          : `fulfilment: stop order ${order}`,
      );
    else if (service === 'notifications')
      console.log(`notifications: e-mail the customer of ${order} about ${event.type}`);
    else console.log(`${service}: record ${event.type} of ${order}`);
  };
}

const CONSUMER_NAMES = consumerDefinitions().map((definition) => definition.name) as [string, ...string[]];
const ArgsSchema = z.object({ consumer: z.enum(CONSUMER_NAMES).default('fulfilment-orders') });

async function main(): Promise<void> {
  const prefix = 'examples/consumer';
  let name: string;
  try {
    name = ArgsSchema.parse(parseArgs({ options: { consumer: { type: 'string' } } }).values).consumer;
  } catch (error) {
    const message =
      error instanceof z.ZodError
        ? `--consumer must be one of ${CONSUMER_NAMES.join(', ')}`
        : reasonOf(error);
    console.error(`${prefix}: ${message}; usage: NATS_URL=… node examples/consumer.ts [--consumer NAME]`);
    process.exit(EXIT_CODES.badConfiguration);
  }
  const definition = consumerDefinitions().find((candidate) => candidate.name === name)!;
  const access = configOrExit(prefix, () => natsAccessFromEnv(process.env, 'nats://127.0.0.1:4222'));
  let connection: NatsConnection;
  try {
    connection = await connect({
      ...connectionOptions(access),
      name: `example-${definition.name}`,
      maxReconnectAttempts: -1,
    });
  } catch (error) {
    console.error(
      `${prefix}: NATS does not answer at ${access.servers.map(withoutPassword).join(', ')} (${reasonOf(error)}); set NATS_URL`,
    );
    process.exit(EXIT_CODES.missingPrerequisite);
  }
  let running: RunningConsumer;
  try {
    running = await startConsumer({
      connection,
      consumer: definition,
      tracker: new SequenceTracker(),
      handle: exampleWork(definition.service),
    });
  } catch (error) {
    console.error(
      `${prefix}: cannot join consumer ${definition.stream}/${definition.name} (${reasonOf(error)}); npm run nats:setup creates it`,
    );
    await connection.close();
    process.exit(EXIT_CODES.missingPrerequisite);
  }
  console.error(
    `${prefix}: consuming ${definition.stream}/${definition.name} in queue group ${definition.deliverGroup}; Ctrl-C stops`,
  );
  const stop = async () => {
    await running.stop();
    await connection.drain();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await running.done;
  } catch (error) {
    console.error(`${prefix}: stopped: ${reasonOf(error)}`);
    process.exit(EXIT_CODES.failure);
  }
}

if (import.meta.main) await main();
