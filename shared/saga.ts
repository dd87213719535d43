import { CancellationReasonSchema, type CancellationReason } from '../events/common.ts';

/** Error names the payment step fails with (SendTaskFailure), as the saga's Catch sees them. */
export const PAYMENT_FAILED = 'PAYMENT_FAILED';
export const PAYMENT_CANCELED = 'PAYMENT_CANCELED';

/**
 * Maps the error that stopped the saga to the contract's cancellation reason; undefined for a
 * fault that is none of them (the order is still compensated, without a reason).
 */
export function cancellationReasonFor(error: string): CancellationReason | undefined {
  const known = CancellationReasonSchema.safeParse(error);
  if (known.success) return known.data;
  if (error === 'ReservationExpiredError') return 'RESERVATION_EXPIRED';
  if (error === 'PaymentMethodRejectedError') return 'PAYMENT_FAILED';
  if (error === 'CustomerCancelledError') return 'CUSTOMER_CANCELLED';
  return undefined;
}
