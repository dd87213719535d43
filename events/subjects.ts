/** JetStream streams and the subjects each one captures. */
export const STREAMS = {
  ORDERS: 'order.*',
  INVENTORY: 'inventory.*',
  PAYMENTS: 'payment.*',
} as const;

export type StreamName = keyof typeof STREAMS;

/** Every domain event subject. A CloudEvent's `type` equals its subject. */
export const SUBJECTS = [
  'order.created',
  'order.status_changed',
  'order.cancelled',
  'order.completed',
  'inventory.reserved',
  'inventory.out_of_stock',
  'inventory.released',
  'inventory.low_stock',
  'payment.initiated',
  'payment.succeeded',
  'payment.failed',
  'payment.cancelled',
  'payment.refunded',
] as const;

export type Subject = (typeof SUBJECTS)[number];
