import { z } from 'zod';
import { CurrencySchema, MinorUnitsSchema, OrderIdSchema, SkuSchema } from './common.ts';

const ReservedLineSchema = z.object({
  sku: SkuSchema,
  quantity: z.number().int().positive(),
  unitPrice: MinorUnitsSchema,
});

export const InventoryReservedSchema = z.object({
  orderId: OrderIdSchema,
  reservationId: z.string(),
  items: z.array(ReservedLineSchema),
  amount: MinorUnitsSchema,
  currency: CurrencySchema,
  expiresAt: z.string(),
});
export type InventoryReserved = z.infer<typeof InventoryReservedSchema>;

export const InventoryOutOfStockSchema = z.object({
  orderId: OrderIdSchema,
  reason: z.enum(['OUT_OF_STOCK', 'UNKNOWN_PRODUCT']),
  skus: z.array(SkuSchema),
});
export type InventoryOutOfStock = z.infer<typeof InventoryOutOfStockSchema>;

export const InventoryReleasedSchema = z.object({
  orderId: OrderIdSchema,
  reservationId: z.string(),
  items: z.array(z.object({ sku: SkuSchema, quantity: z.number().int().positive() })),
  /** Why the stock came back: the saga compensated, or the reservation expired. */
  reason: z.enum(['COMPENSATION', 'EXPIRED']),
});
export type InventoryReleased = z.infer<typeof InventoryReleasedSchema>;

export const InventoryLowStockSchema = z.object({
  sku: SkuSchema,
  available: z.number().int().nonnegative(),
  threshold: z.number().int().nonnegative(),
});
export type InventoryLowStock = z.infer<typeof InventoryLowStockSchema>;
