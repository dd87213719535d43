import { z } from 'zod';

/** 1–64 characters of `[A-Za-z0-9._-]`, wherever a SKU appears. */
export const SkuSchema = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,64}$/, 'a sku is 1-64 characters of A-Z a-z 0-9 . _ -');

/** ISO 4217 code, lower case as Stripe uses it. */
export const CurrencySchema = z
  .string()
  .regex(/^[A-Za-z]{3}$/, 'a currency is a three-letter ISO 4217 code')
  .transform((code) => code.toLowerCase());

/** Money in the currency's minor unit. */
export const MinorUnitsSchema = z.number().int().nonnegative();

export const OrderIdSchema = z.string().min(1).max(64);

export const OrderStatusSchema = z.enum([
  'PENDING',
  'STOCK_RESERVED',
  'PAYMENT_PENDING',
  'COMPLETED',
  'CANCELLED',
]);
export type OrderStatus = z.infer<typeof OrderStatusSchema>;

export const SagaStateSchema = z.enum([
  'STARTED',
  'STOCK_RESERVED',
  'PAYMENT_PENDING',
  'COMPLETED',
  'COMPENSATING',
  'COMPENSATED',
]);
export type SagaState = z.infer<typeof SagaStateSchema>;

export const CancellationReasonSchema = z.enum([
  'OUT_OF_STOCK',
  'UNKNOWN_PRODUCT',
  'PAYMENT_FAILED',
  'PAYMENT_TIMEOUT',
  'PAYMENT_CANCELED',
  'CUSTOMER_CANCELLED',
  'RESERVATION_EXPIRED',
  // A step kept failing after its retries (or failed in a way no retry can change), before money was kept.
  'PROCESSING_ERROR',
]);
export type CancellationReason = z.infer<typeof CancellationReasonSchema>;

export const OrderLineSchema = z.object({
  sku: SkuSchema,
  quantity: z.number().int().min(1).max(999),
  unitPrice: MinorUnitsSchema.optional(),
});
export type OrderLine = z.infer<typeof OrderLineSchema>;
