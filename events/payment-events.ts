import { z } from 'zod';
import { CurrencySchema, MinorUnitsSchema, OrderIdSchema } from './common.ts';

const PaymentSchema = z.object({
  orderId: OrderIdSchema,
  paymentIntentId: z.string(),
  amount: MinorUnitsSchema,
  currency: CurrencySchema,
});

export const PaymentInitiatedSchema = PaymentSchema.extend({ status: z.string() });
export type PaymentInitiated = z.infer<typeof PaymentInitiatedSchema>;

export const PaymentSucceededSchema = PaymentSchema;
export type PaymentSucceeded = z.infer<typeof PaymentSucceededSchema>;

export const PaymentFailedSchema = PaymentSchema.extend({
  reason: z.string(),
  failureCode: z.string().optional(),
});
export type PaymentFailed = z.infer<typeof PaymentFailedSchema>;

export const PaymentCancelledSchema = PaymentSchema.extend({ reason: z.string() });
export type PaymentCancelled = z.infer<typeof PaymentCancelledSchema>;

export const PaymentRefundedSchema = PaymentSchema.extend({ reason: z.string(), refundId: z.string() });
export type PaymentRefunded = z.infer<typeof PaymentRefundedSchema>;
