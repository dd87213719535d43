import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseEvent, type CloudEvent } from '../../events/envelope.ts';
import { STREAMS, type StreamName } from '../../events/subjects.ts';

export interface StoredEvent {
  stream: StreamName;
  seq: number;
  natsSubject: string;
  msgId: string | undefined;
  event: CloudEvent;
}

/** Every message in the contract's streams, decoded with the event schema (a bad one fails the test). */
export async function readStoredEvents(natsUrl: string): Promise<StoredEvent[]> {
  const connection = await connect({ servers: natsUrl });
  try {
    const jsm = await jetstreamManager(connection);
    const stored: StoredEvent[] = [];
    for (const stream of Object.keys(STREAMS) as StreamName[]) {
      const { state } = await jsm.streams.info(stream);
      for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
        const message = await jsm.streams.getMessage(stream, { seq });
        if (!message) continue;
        stored.push({
          stream,
          seq,
          natsSubject: message.subject,
          msgId: message.header?.get('Nats-Msg-Id'),
          event: parseEvent(message.json()),
        });
      }
    }
    return stored;
  } finally {
    await connection.close();
  }
}

/** Polls the streams until `done` holds for the events about `subject` (an orderId or sku). */
export async function waitForEvents(
  natsUrl: string,
  subject: string,
  done: (events: StoredEvent[]) => boolean,
  timeoutMs = 20_000,
): Promise<StoredEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = (await readStoredEvents(natsUrl)).filter((stored) => stored.event.subject === subject);
    if (done(events)) return events;
    if (Date.now() > deadline) {
      throw new Error(
        `events for ${subject} never matched; saw ${events.map((e) => e.event.type).join(', ') || 'none'}`,
      );
    }
    await sleep(100);
  }
}

export const typesOf = (events: StoredEvent[]) => events.map((stored) => stored.event.type);
export const countOf = (events: StoredEvent[], type: string) =>
  events.filter((stored) => stored.event.type === type).length;
