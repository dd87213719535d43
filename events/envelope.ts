import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import {
  InventoryLowStockSchema,
  InventoryOutOfStockSchema,
  InventoryReleasedSchema,
  InventoryReservedSchema,
} from './inventory-events.ts';
import {
  OrderCancelledSchema,
  OrderCompletedSchema,
  OrderCreatedSchema,
  OrderStatusChangedSchema,
} from './order-events.ts';
import {
  PaymentCancelledSchema,
  PaymentFailedSchema,
  PaymentInitiatedSchema,
  PaymentRefundedSchema,
  PaymentSucceededSchema,
} from './payment-events.ts';
import { SUBJECTS, type Subject } from './subjects.ts';

/** The `data` schema of every subject: the one definition producers, the bridge and tests share. */
export const EVENT_DATA_SCHEMAS = {
  'order.created': OrderCreatedSchema,
  'order.status_changed': OrderStatusChangedSchema,
  'order.cancelled': OrderCancelledSchema,
  'order.completed': OrderCompletedSchema,
  'inventory.reserved': InventoryReservedSchema,
  'inventory.out_of_stock': InventoryOutOfStockSchema,
  'inventory.released': InventoryReleasedSchema,
  'inventory.low_stock': InventoryLowStockSchema,
  'payment.initiated': PaymentInitiatedSchema,
  'payment.succeeded': PaymentSucceededSchema,
  'payment.failed': PaymentFailedSchema,
  'payment.cancelled': PaymentCancelledSchema,
  'payment.refunded': PaymentRefundedSchema,
} as const satisfies Record<Subject, z.ZodType>;

export type EventData<S extends Subject> = z.infer<(typeof EVENT_DATA_SCHEMAS)[S]>;

/**
 * The CloudEvents `sequence` extension: the event's position among the events its `source` wrote
 * for its `subject`, from 1, zero-padded to 12 digits so that it sorts as text too.
 */
export const SequenceSchema = z.string().regex(/^\d{12}$/, 'a 12-digit decimal string');

/** `7` → `000000000007`. */
export const formatSequence = (position: number): string => String(position).padStart(12, '0');

/** A CloudEvents 1.0 JSON document; `type` is the NATS subject, `subject` the orderId (or sku). */
export const CloudEventSchema = z
  .object({
    specversion: z.literal('1.0'),
    id: z.string().min(1),
    source: z.string().min(1),
    type: z.enum(SUBJECTS),
    time: z.iso.datetime(),
    subject: z.string().min(1),
    datacontenttype: z.literal('application/json'),
    sequence: SequenceSchema,
    data: z.record(z.string(), z.unknown()),
  })
  .superRefine((event, ctx) => {
    const result = EVENT_DATA_SCHEMAS[event.type].safeParse(event.data);
    if (!result.success) {
      for (const issue of result.error.issues) ctx.addIssue({ ...issue, path: ['data', ...issue.path] });
    }
  });

export type CloudEvent<S extends Subject = Subject> = Omit<
  z.infer<typeof CloudEventSchema>,
  'type' | 'data'
> & {
  type: S;
  data: EventData<S>;
};

/**
 * An event as a producer builds it, before the outbox gives it its `sequence` in the transaction
 * that writes it.
 */
export type NewEvent<S extends Subject = Subject> = Omit<CloudEvent<S>, 'sequence'>;

/** Builds a validated event, without its sequence. Throws when `data` does not match the subject's schema. */
export function createEvent<S extends Subject>(
  type: S,
  options: { source: string; subject: string; data: EventData<S>; time?: Date; id?: string },
): NewEvent<S> {
  const data = EVENT_DATA_SCHEMAS[type].parse(options.data) as EventData<S>;
  return {
    specversion: '1.0',
    id: options.id ?? randomUUID(),
    source: options.source,
    type,
    time: (options.time ?? new Date()).toISOString(),
    subject: options.subject,
    datacontenttype: 'application/json',
    data,
  };
}

/** Decodes an inbound event with its schema; never trust a generated type alone. */
export function parseEvent(value: unknown): CloudEvent {
  const envelope = CloudEventSchema.parse(value);
  // The refinement only checked `data`; return it parsed (normalised, unknown keys dropped).
  return { ...envelope, data: EVENT_DATA_SCHEMAS[envelope.type].parse(envelope.data) } as CloudEvent;
}
