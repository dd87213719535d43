import { z } from 'zod';
import packageJson from '../package.json' with { type: 'json' };
import { streamDefinitions, type StreamDefinition } from '../infra/nats/streams.ts';
import {
  CloudEventSchema,
  createEvent,
  EVENT_DATA_SCHEMAS,
  formatSequence,
  type EventData,
} from './envelope.ts';
import { STREAMS, SUBJECTS, type StreamName, type Subject } from './subjects.ts';

/*
 * The AsyncAPI 3.0 document of the domain events, built from the one definition: SUBJECTS, STREAMS,
 * EVENT_DATA_SCHEMAS and the JetStream stream definitions. `npm run docs:asyncapi` writes it to
 * events/asyncapi.json; a test fails when the committed file and this builder disagree.
 */

type JsonSchema = Record<string, unknown>;

/** Retention and storage are fixed by `ensureStreams` (shared/nats.ts) for every stream. */
const RETENTION = 'limits';
const STORAGE = 'file';
const LOCAL_REPLICAS = 1;
const CLUSTER_REPLICAS = 3;

const SERVICE_OF: Record<StreamName, { source: string; table: string }> = {
  ORDERS: { source: 'order-saga/orders', table: 'orders' },
  INVENTORY: { source: 'order-saga/inventory', table: 'inventory' },
  PAYMENTS: { source: 'order-saga/payments', table: 'payments' },
};

const ENVELOPE_FIELDS: Record<string, string> = {
  specversion: 'CloudEvents specification version.',
  id: 'Unique id of this event; also sent as the `Nats-Msg-Id` header, so JetStream drops a re-publish within the duplicate window.',
  source: 'The producing service: `order-saga/orders`, `order-saga/inventory` or `order-saga/payments`.',
  type: 'Equals the NATS subject (the channel address).',
  time: 'When the producing service made the state change this event reports (ISO 8601, UTC).',
  subject: 'The orderId the event is about; for `inventory.low_stock` the sku.',
  datacontenttype: '`data` is JSON.',
  sequence:
    'CloudEvents `sequence` extension: the position of this event among the events its `source` wrote for its `subject`, from 1, zero-padded to 12 digits. Consumers order by it and drop duplicates by (`source`, `subject`, `sequence`), however late a redelivery comes; two events of one state change are consecutive (`order.status_changed` first).',
  data: 'The event data; its schema depends on `type`. Consumers should ignore fields they do not know.',
};

/** One line per subject, for message lists. */
const SUBJECT_SUMMARIES: Record<Subject, string> = {
  'order.created': 'An order was accepted.',
  'order.status_changed': 'The order moved one saga step.',
  'order.cancelled': 'The order was cancelled and its saga compensated.',
  'order.completed': 'The order was paid and its stock sold.',
  'inventory.reserved': 'Every line of the order is held.',
  'inventory.out_of_stock': 'The order could not be reserved.',
  'inventory.released': 'A reservation gave its stock back.',
  'inventory.low_stock': 'A product fell below its low-stock threshold.',
  'payment.initiated': 'The PaymentIntent was created.',
  'payment.succeeded': 'The payment succeeded.',
  'payment.failed': 'The payment was declined.',
  'payment.cancelled': 'The PaymentIntent was canceled.',
  'payment.refunded': 'A paid PaymentIntent was refunded.',
};

/** What each subject reports, as the producers in functions/ emit it. */
const SUBJECT_DESCRIPTIONS: Record<Subject, string> = {
  'order.created':
    'An order was accepted by `POST /orders` (status `PENDING`, sagaState `STARTED`). Written in the same transaction as the order. `items` are the requested lines with duplicate SKUs merged; `currency` is lower case (`usd` when the request named none).',
  'order.status_changed':
    'The order moved one saga step. Carries the new and previous `status` and `sagaState`; `reason` appears once a cancellation reason is known. While compensating, `status` keeps its previous value and only `sagaState` becomes `COMPENSATING`.',
  'order.cancelled':
    'Compensation finished: status `CANCELLED`, sagaState `COMPENSATED`. `reason` is absent when the fault that stopped the saga maps to no contract cancellation reason.',
  'order.completed':
    'The payment succeeded and the reservation was confirmed: status and sagaState `COMPLETED`. `amount` is the total in minor units.',
  'inventory.reserved':
    'Every line of the order is held until `expiresAt` (`RESERVATION_TTL_SECONDS` after the reservation), priced from the catalogue.',
  'inventory.out_of_stock':
    'The order could not be reserved and nothing is held. `reason` is `OUT_OF_STOCK` (`skus` lists the lines short of stock) or `UNKNOWN_PRODUCT` (`skus` are not in the catalogue or not sold in the order currency).',
  'inventory.released':
    'A reservation gave its stock back: `reason` `COMPENSATION` (the saga compensated) or `EXPIRED` (its time-to-live passed: the sweeper released it, or, as a backstop, DynamoDB deleted it by TTL and the inventory service put it back as `EXPIRED`, once).',
  'inventory.low_stock':
    "A product's `available` went strictly below its `lowStockThreshold` (a threshold of 0 never alerts): `{sku, available, threshold}`, with the CloudEvent `subject` set to the sku. Once per crossing: further sales below the threshold do not repeat it; it fires again only after stock has recovered to the threshold and crossed below it again. A PUT that sets stock below the threshold, or raises the threshold above the stock, is a crossing too. Unlike the other events it is written just after the change, by the inventory service reading its own table's stream (the change's transaction cannot know that it crossed); its id derives from that stream record, so it is never written twice.",
  'payment.initiated':
    "The PaymentIntent was created, unconfirmed, and its id recorded; it is confirmed with the order's `paymentMethodId` (if any) only after this. `status` is the status Stripe answered on creation (`requires_payment_method`).",
  'payment.succeeded':
    'Stripe reported `payment_intent.succeeded`, or compensation found the PaymentIntent already paid and records the success before refunding it.',
  'payment.failed':
    "The payment failed for good: Stripe reported `payment_intent.payment_failed` for a payment confirmed server-side (with the order's `paymentMethodId`), so the order is cancelled; `reason` is `DECLINED`, `failureCode` the decline code (e.g. `generic_decline`, `insufficient_funds`). A decline in a browser checkout is not final (the customer may try another card until the payment timeout) and emits nothing.",
  'payment.cancelled':
    "The PaymentIntent was canceled. By compensation, the payment timeout or a customer's cancel: `reason` is the order's cancellation reason (e.g. `PAYMENT_FAILED`, `PAYMENT_TIMEOUT`, `CUSTOMER_CANCELLED`, `PROCESSING_ERROR`), else `COMPENSATION`. By a `payment_intent.canceled` webhook: the reason compensation recorded before it called Stripe, else Stripe's `cancellation_reason`, else `CANCELED`.",
  'payment.refunded':
    'A paid PaymentIntent was refunded: by compensation, when it had already succeeded, or by the webhook, when its success arrived after the payment was closed (failed or cancelled). `refundId` is the Stripe refund id; `reason` is as for `payment.cancelled` (for a late success: the reason the payment was closed with, else `PAYMENT_FAILED` or `PAYMENT_CANCELED`). A success for another PaymentIntent of the order is refunded without an event: it changes no payment.',
};

const EXAMPLE_TIME = new Date('2025-01-15T10:30:00.000Z');
const ORDER_ID = '0b6f3a9e-2f4d-4c41-9a8e-5d2b7c1e4f60';
const PAYMENT_INTENT_ID = 'pi_3Q0exampleOrderSaga';

/** One valid `data` per subject; `createEvent` checks each against its schema when the document is built. */
const EXAMPLE_DATA: { [S in Subject]: EventData<S> } = {
  'order.created': {
    orderId: ORDER_ID,
    status: 'PENDING',
    sagaState: 'STARTED',
    customerId: 'customer-42',
    items: [{ sku: 'tee-classic-black', quantity: 2 }],
    currency: 'usd',
  },
  'order.status_changed': {
    orderId: ORDER_ID,
    status: 'STOCK_RESERVED',
    sagaState: 'STOCK_RESERVED',
    previousStatus: 'PENDING',
    previousSagaState: 'STARTED',
  },
  'order.cancelled': {
    orderId: ORDER_ID,
    status: 'CANCELLED',
    sagaState: 'COMPENSATED',
    reason: 'PAYMENT_FAILED',
  },
  'order.completed': {
    orderId: ORDER_ID,
    status: 'COMPLETED',
    sagaState: 'COMPLETED',
    amount: 5000,
    currency: 'usd',
    paymentIntentId: PAYMENT_INTENT_ID,
  },
  'inventory.reserved': {
    orderId: ORDER_ID,
    reservationId: '7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f',
    items: [{ sku: 'tee-classic-black', quantity: 2, unitPrice: 2500 }],
    amount: 5000,
    currency: 'usd',
    expiresAt: '2025-01-15T10:45:00.000Z',
  },
  'inventory.out_of_stock': { orderId: ORDER_ID, reason: 'OUT_OF_STOCK', skus: ['print-limited-01'] },
  'inventory.released': {
    orderId: ORDER_ID,
    reservationId: '7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f',
    items: [{ sku: 'tee-classic-black', quantity: 2 }],
    reason: 'COMPENSATION',
  },
  'inventory.low_stock': { sku: 'tee-classic-black', available: 9, threshold: 10 },
  'payment.initiated': {
    orderId: ORDER_ID,
    paymentIntentId: PAYMENT_INTENT_ID,
    amount: 5000,
    currency: 'usd',
    status: 'requires_payment_method',
  },
  'payment.succeeded': {
    orderId: ORDER_ID,
    paymentIntentId: PAYMENT_INTENT_ID,
    amount: 5000,
    currency: 'usd',
  },
  'payment.failed': {
    orderId: ORDER_ID,
    paymentIntentId: PAYMENT_INTENT_ID,
    amount: 5000,
    currency: 'usd',
    reason: 'DECLINED',
    failureCode: 'generic_decline',
  },
  'payment.cancelled': {
    orderId: ORDER_ID,
    paymentIntentId: PAYMENT_INTENT_ID,
    amount: 5000,
    currency: 'usd',
    reason: 'PAYMENT_FAILED',
  },
  'payment.refunded': {
    orderId: ORDER_ID,
    paymentIntentId: PAYMENT_INTENT_ID,
    amount: 5000,
    currency: 'usd',
    reason: 'PAYMENT_TIMEOUT',
    refundId: 're_3Q0exampleOrderSaga',
  },
};

/** `order.status_changed` → `orderStatusChanged`: ids safe for every AsyncAPI map key. */
export function channelIdOf(subject: Subject): string {
  return subject
    .split(/[._]/)
    .map((word, index) => (index === 0 ? word : word.charAt(0).toUpperCase() + word.slice(1)))
    .join('');
}

export function streamOf(subject: Subject): StreamName {
  const stream = (Object.keys(STREAMS) as StreamName[]).find(
    (name) => STREAMS[name].replace('*', '') === subject.replace(/[^.]+$/, ''),
  );
  if (!stream) throw new Error(`no stream captures ${subject}`);
  return stream;
}

/** The JSON Schema (draft-07, as AsyncAPI schemas are) of one subject's complete CloudEvent. */
export function payloadSchemaOf(subject: Subject): JsonSchema {
  const envelope = CloudEventSchema.safeExtend({
    type: z.literal(subject),
    data: EVENT_DATA_SCHEMAS[subject],
  });
  // Input mode: the schema a consumer may validate with; unknown fields stay allowed (tolerant readers).
  const schema = z.toJSONSchema(envelope, { target: 'draft-7', io: 'input' }) as JsonSchema;
  delete schema.$schema; // AsyncAPI schemas are draft-07 supersets; the dialect is implied
  const properties = schema.properties as Record<string, JsonSchema>;
  for (const [field, description] of Object.entries(ENVELOPE_FIELDS)) {
    if (properties[field]) properties[field] = { description, ...properties[field] };
  }
  return schema;
}

function exampleEvent(subject: Subject) {
  const stream = streamOf(subject);
  const data = EXAMPLE_DATA[subject] as EventData<Subject>;
  return {
    ...createEvent(subject, {
      source: SERVICE_OF[stream].source,
      subject: subject === 'inventory.low_stock' ? EXAMPLE_DATA['inventory.low_stock'].sku : ORDER_ID,
      data,
      time: EXAMPLE_TIME,
      id: `6e0f5a1c-0000-4000-8000-${String(SUBJECTS.indexOf(subject)).padStart(12, '0')}`,
    }),
    sequence: formatSequence(3),
  };
}

const minutes = (ms: number) => `${ms / 60_000} min`;
const hours = (ms: number) => `${ms / 3_600_000} h`;

function streamsTable(local: StreamDefinition[], cluster: StreamDefinition[]): string {
  const rows = local.map((definition) => {
    const replicas = cluster.find((other) => other.name === definition.name)?.replicas;
    return `| \`${definition.name}\` | \`${definition.subjects.join('`, `')}\` | ${RETENTION} | ${hours(definition.maxAgeMs)} | ${minutes(definition.duplicateWindowMs)} | ${STORAGE} | R${definition.replicas} local, R${replicas} cluster |`;
  });
  return [
    '| stream | subjects | retention | max age | duplicate window | storage | replicas |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

function description(local: StreamDefinition[], cluster: StreamDefinition[]): string {
  const window = minutes(local[0]!.duplicateWindowMs);
  return [
    'Domain events of the order saga, published to NATS JetStream by the outbox bridge.',
    '',
    '## Messages',
    'Every message is one CloudEvents 1.0 document in structured JSON mode. `type` equals the NATS subject;',
    '`subject` is the orderId the event is about (for `inventory.low_stock`, the sku); `id` is unique per event',
    'and is also the `Nats-Msg-Id` header. `data` is described per channel; consumers should ignore fields',
    'they do not know.',
    '',
    '## Streams',
    streamsTable(local, cluster),
    '',
    'The local runtime (`npm start`) creates or updates the streams at start with one replica; `npm run nats:setup`',
    `does the same on a cluster (\`NATS_URL=<servers> NATS_REPLICAS=${CLUSTER_REPLICAS}\`). Both are idempotent.`,
    '',
    '## Delivery',
    '- Transactional outbox: each event is written in the same DynamoDB transaction as the state change it',
    '  reports, so there is no change without its event and no event without its change. The one exception is',
    '  `inventory.low_stock`, written from the stream record of the change that crossed the threshold.',
    "- The bridge reads the tables' DynamoDB Streams, publishes each event with `Nats-Msg-Id` = `id` and waits",
    `  for the stream's PubAck. A re-publish of the same id within the ${window} duplicate window is dropped by`,
    '  JetStream, so each event is stored once. A duplicate can only be stored if a publish whose PubAck was lost',
    `  is retried more than ${window} later.`,
    '- Order: the outbox item of an event shares the partition key of the aggregate it reports (an order, an',
    "  order's reservation, an order's payment), and the bridge publishes a shard's records in order and stops",
    '  at the first failure, retrying from there. So the events of one aggregate reach their stream in commit',
    '  order. There is no order across the three streams.',
    "- A record the bridge still cannot publish after 100 retries or 24 hours goes to the bridge's dead-letter",
    '  queue (which alarms); the outbox item stays in its table for 7 days.',
    '- JetStream consumers receive messages at least once; deduplicate by `id` where an effect must happen once.',
  ].join('\n');
}

/** Builds the AsyncAPI 3.0 document of every subject. */
export function buildAsyncApiDocument() {
  const local = streamDefinitions(LOCAL_REPLICAS);
  const cluster = streamDefinitions(CLUSTER_REPLICAS);
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};

  for (const subject of SUBJECTS) {
    const id = channelIdOf(subject);
    const stream = streamOf(subject);
    const example = exampleEvent(subject);
    messages[id] = {
      name: subject,
      title: subject,
      summary: SUBJECT_SUMMARIES[subject],
      description: SUBJECT_DESCRIPTIONS[subject],
      contentType: 'application/cloudevents+json',
      headers: { $ref: '#/components/schemas/NatsHeaders' },
      correlationId: { $ref: '#/components/correlationIds/subject' },
      payload: payloadSchemaOf(subject),
      examples: [{ name: `${id}Example`, headers: { 'Nats-Msg-Id': example.id }, payload: example }],
    };
    channels[id] = {
      address: subject,
      title: subject,
      description: `${SUBJECT_DESCRIPTIONS[subject]}\n\nStored in stream \`${stream}\` (\`${STREAMS[stream]}\`); written to the outbox of the ${SERVICE_OF[stream].table} table.`,
      messages: { [id]: { $ref: `#/components/messages/${id}` } },
      'x-jetstream-stream': stream,
    };
    operations[`publish${id.charAt(0).toUpperCase()}${id.slice(1)}`] = {
      action: 'send',
      channel: { $ref: `#/channels/${id}` },
      summary: `The ${SERVICE_OF[stream].table} service publishes \`${subject}\` through its outbox.`,
      messages: [{ $ref: `#/channels/${id}/messages/${id}` }],
    };
  }

  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Order saga domain events',
      version: packageJson.version,
      description: description(local, cluster),
      license: { name: packageJson.license },
    },
    defaultContentType: 'application/cloudevents+json',
    servers: {
      local: {
        host: '127.0.0.1:4222',
        protocol: 'nats',
        title: 'Local runtime',
        description:
          '`npm start` publishes to `NATS_URL` when set, else to nats://127.0.0.1:4222 when it answers, else to a private `nats-server -js` on a free port (it prints the URL it uses). Streams have one replica.',
      },
      cluster: {
        host: '{node}',
        protocol: 'nats',
        title: 'JetStream cluster',
        description: `The cluster the deployed bridge publishes to: the stack parameter \`NatsUrl\` lists its servers. Streams have ${CLUSTER_REPLICAS} replicas; a sample 3-node configuration is in infra/nats/cluster/.`,
        variables: {
          node: { description: 'host:port of any node of the cluster', examples: ['127.0.0.1:14222'] },
        },
      },
    },
    channels,
    operations,
    components: {
      schemas: {
        NatsHeaders: {
          type: 'object',
          required: ['Nats-Msg-Id'],
          properties: {
            'Nats-Msg-Id': {
              type: 'string',
              minLength: 1,
              description:
                "Equals the CloudEvent's `id`; JetStream drops a message whose id it stored within the duplicate window.",
            },
          },
        },
      },
      correlationIds: {
        subject: {
          description: 'The orderId the event is about (the sku for `inventory.low_stock`).',
          location: '$message.payload#/subject',
        },
      },
      messages,
    },
    'x-jetstream-streams': Object.fromEntries(
      local.map((definition) => [
        definition.name,
        {
          subjects: definition.subjects,
          retention: RETENTION,
          storage: STORAGE,
          maxAgeMs: definition.maxAgeMs,
          duplicateWindowMs: definition.duplicateWindowMs,
          replicas: {
            local: definition.replicas,
            cluster: cluster.find((other) => other.name === definition.name)!.replicas,
          },
        },
      ]),
    ),
  };
}
