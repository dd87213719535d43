export * from './subjects.ts';
export * from './common.ts';
export * from './envelope.ts';
export * from './order-events.ts';
export * from './inventory-events.ts';
export * from './payment-events.ts';
