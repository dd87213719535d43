import { z } from 'zod';
import { CurrencySchema, MinorUnitsSchema } from '../../events/common.ts';

export const PAYMENT_SOURCE = 'order-saga/payments';

/**
 * The payment's own state machine; it only moves forward:
 *   CREATING → INITIATED → SUCCEEDED → REFUNDED
 *                        ↘ FAILED → CANCELLED
 *                                 ↘ REFUNDED (paid after all, refunded by compensation)
 *                        ↘ CANCELLED
 */
export type PaymentStatus = 'CREATING' | 'INITIATED' | 'SUCCEEDED' | 'FAILED' | 'CANCELLED' | 'REFUNDED';

export const ALLOWED_FROM: Record<PaymentStatus, readonly PaymentStatus[]> = {
  CREATING: [],
  INITIATED: ['CREATING'],
  SUCCEEDED: ['CREATING', 'INITIATED'],
  FAILED: ['CREATING', 'INITIATED'],
  CANCELLED: ['CREATING', 'INITIATED', 'FAILED'],
  // FAILED too: a customer may pay with another card after a decline; compensation finds it paid.
  REFUNDED: ['SUCCEEDED', 'FAILED'],
};

/** Outcomes the saga waits for; once one is reached the waiting task is told exactly once. */
export const SETTLED: readonly PaymentStatus[] = ['SUCCEEDED', 'FAILED', 'CANCELLED', 'REFUNDED'];

export interface Payment {
  orderId: string;
  amount: number;
  currency: string;
  status: PaymentStatus;
  paymentIntentId?: string;
  stripeStatus?: string;
  failureCode?: string;
  failureMessage?: string;
  refundId?: string;
  /** The Step Functions task token of the saga step waiting for the outcome. */
  taskToken?: string;
  /** Set once the waiting task has been told the outcome for this token. */
  notifiedToken?: string;
  createdAt: string;
  updatedAt: string;
}

export const RequestPaymentCommandSchema = z.object({
  orderId: z.string().min(1),
  customerId: z.string().nullish(),
  amount: MinorUnitsSchema.min(1),
  currency: CurrencySchema,
  paymentMethodId: z.string().nullish(),
  taskToken: z.string().min(1),
});
export type RequestPaymentCommand = z.infer<typeof RequestPaymentCommandSchema>;

export const CancelPaymentCommandSchema = z.object({
  orderId: z.string().min(1),
  failure: z.object({ Error: z.string(), Cause: z.string().optional() }).optional(),
  /** The order's cancellation reason, when it has one; it wins over the failure's. */
  cancellationReason: z.string().nullish(),
});
export type CancelPaymentCommand = z.infer<typeof CancelPaymentCommandSchema>;

/** The stored payment is not where this step needs it: a fault to retry or to look at, never a silent no-op. */
export class PaymentStateError extends Error {
  constructor(orderId: string, found: PaymentStatus | undefined, wanted: PaymentStatus) {
    super(`Payment of order ${orderId} is ${found ?? 'missing'}; it cannot become ${wanted}`);
    this.name = 'PaymentStateError';
  }
}
