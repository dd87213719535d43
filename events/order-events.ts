import { z } from 'zod';
import {
  CancellationReasonSchema,
  CurrencySchema,
  MinorUnitsSchema,
  OrderIdSchema,
  OrderLineSchema,
  OrderStatusSchema,
  SagaStateSchema,
} from './common.ts';

const OrderStateSchema = z.object({
  orderId: OrderIdSchema,
  status: OrderStatusSchema,
  sagaState: SagaStateSchema,
});

export const OrderCreatedSchema = OrderStateSchema.extend({
  customerId: z.string(),
  items: z.array(OrderLineSchema),
  currency: CurrencySchema,
});
export type OrderCreated = z.infer<typeof OrderCreatedSchema>;

export const OrderStatusChangedSchema = OrderStateSchema.extend({
  previousStatus: OrderStatusSchema,
  previousSagaState: SagaStateSchema,
  reason: CancellationReasonSchema.optional(),
});
export type OrderStatusChanged = z.infer<typeof OrderStatusChangedSchema>;

export const OrderCancelledSchema = OrderStateSchema.extend({
  reason: CancellationReasonSchema.optional(),
});
export type OrderCancelled = z.infer<typeof OrderCancelledSchema>;

export const OrderCompletedSchema = OrderStateSchema.extend({
  amount: MinorUnitsSchema,
  currency: CurrencySchema,
  paymentIntentId: z.string().optional(),
});
export type OrderCompleted = z.infer<typeof OrderCompletedSchema>;
