import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { streamDefinitions } from '../infra/nats/streams.ts';
import { checkSchema } from '../tests/support/json-schema.ts';
import { buildAsyncApiDocument, channelIdOf } from './asyncapi.ts';
import { sequenceEvents } from '../shared/outbox/write.ts';
import { createEvent } from './envelope.ts';
import { STREAMS, SUBJECTS, type Subject } from './subjects.ts';

type Json = Record<string, unknown>;
const document = buildAsyncApiDocument();
const channels = document.channels as Record<
  string,
  { address: string; messages: Record<string, { $ref: string }> }
>;
const messages = document.components.messages as Record<
  string,
  { payload: Json; headers: Json; examples: Json[] }
>;

function messageFor(subject: Subject) {
  const channel = Object.values(channels).find((candidate) => candidate.address === subject);
  if (!channel) throw new Error(`no channel for ${subject}`);
  const [reference] = Object.values(channel.messages);
  return messages[reference!.$ref.split('/').pop()!]!;
}

const orderId = '9d2c4b7a-1e3f-4a5b-8c6d-7e8f9a0b1c2d';

describe('the AsyncAPI document', () => {
  it('is the committed events/asyncapi.json (run `npm run docs:asyncapi` after changing an event)', async () => {
    const committed = JSON.parse(
      await readFile(new URL('./asyncapi.json', import.meta.url), 'utf8'),
    ) as unknown;
    expect(committed).toEqual(JSON.parse(JSON.stringify(document)));
  });

  it('has one channel per subject, addressed by the subject', () => {
    expect(Object.values(channels).map((channel) => channel.address)).toEqual([...SUBJECTS]);
    for (const subject of SUBJECTS) expect(channels[channelIdOf(subject)]?.address).toBe(subject);
    expect(Object.keys(document.operations)).toHaveLength(SUBJECTS.length);
  });

  it('describes the contract streams with their limits', () => {
    const streams = document['x-jetstream-streams'] as Record<string, Json>;
    expect(Object.keys(streams).sort()).toEqual(Object.keys(STREAMS).sort());
    for (const definition of streamDefinitions(1)) {
      expect(streams[definition.name]).toMatchObject({
        subjects: [STREAMS[definition.name]],
        retention: 'limits',
        storage: 'file',
        maxAgeMs: 24 * 3600 * 1000,
        duplicateWindowMs: 10 * 60 * 1000,
        replicas: { local: 1, cluster: 3 },
      });
    }
  });

  it('accepts events built with createEvent and sequenced, Nats-Msg-Id header included', () => {
    const events = sequenceEvents(
      [
        createEvent('order.created', {
          source: 'order-saga/orders',
          subject: orderId,
          data: {
            orderId,
            customerId: 'c-1',
            items: [{ sku: 'sku-1', quantity: 3 }],
            currency: 'EUR',
            status: 'PENDING',
            sagaState: 'STARTED',
          },
        }),
        createEvent('order.cancelled', {
          source: 'order-saga/orders',
          subject: orderId,
          data: { orderId, status: 'CANCELLED', sagaState: 'COMPENSATED' },
        }),
        createEvent('inventory.out_of_stock', {
          source: 'order-saga/inventory',
          subject: orderId,
          data: { orderId, reason: 'UNKNOWN_PRODUCT', skus: ['nope'] },
        }),
        createEvent('inventory.low_stock', {
          source: 'order-saga/inventory',
          subject: 'sku-1',
          data: { sku: 'sku-1', available: 2, threshold: 5 },
        }),
        createEvent('payment.failed', {
          source: 'order-saga/payments',
          subject: orderId,
          data: {
            orderId,
            paymentIntentId: 'pi_1',
            amount: 1200,
            currency: 'usd',
            reason: 'DECLINED',
            failureCode: 'x',
          },
        }),
      ],
      0,
    );
    for (const event of events) {
      const message = messageFor(event.type);
      // Through JSON, as the bridge publishes it.
      expect(checkSchema(message.payload, JSON.parse(JSON.stringify(event))), event.type).toEqual([]);
      expect(
        checkSchema(message.headers, { 'Nats-Msg-Id': event.id }, { root: document }),
        event.type,
      ).toEqual([]);
    }
  });

  it('rejects events that break the envelope or the data schema', () => {
    const event = createEvent('payment.succeeded', {
      source: 'order-saga/payments',
      subject: orderId,
      data: { orderId, paymentIntentId: 'pi_1', amount: 1200, currency: 'usd' },
    });
    const payload = messageFor('payment.succeeded').payload;
    const withoutData: Json = { ...event };
    delete withoutData.data;
    expect(checkSchema(payload, withoutData)).toContain('$: missing required data');
    expect(checkSchema(payload, { ...event, type: 'payment.failed' })).not.toEqual([]);
    const dataWithoutAmount: Json = { ...event.data };
    delete dataWithoutAmount.amount;
    expect(checkSchema(payload, { ...event, data: dataWithoutAmount })).toContain(
      '$.data: missing required amount',
    );
    expect(checkSchema(messageFor('payment.succeeded').headers, {}, { root: document })).toContain(
      '$: missing required Nats-Msg-Id',
    );
  });

  it('carries a valid example for every subject', () => {
    for (const subject of SUBJECTS) {
      const message = messageFor(subject);
      expect(message.examples).toHaveLength(1);
      const [example] = message.examples as Array<{ payload: Json; headers: Json }>;
      expect(checkSchema(message.payload, example!.payload), subject).toEqual([]);
      expect(example!.headers['Nats-Msg-Id']).toBe(example!.payload.id);
    }
  });
});
