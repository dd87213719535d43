import type { AdjustStockResult, InventoryRepository } from './inventory-repository.ts';
import { adjustmentHash, type AdjustStockRequest, type VersionPrecondition } from './stock.ts';

export interface AdjustmentDeps {
  inventory: InventoryRepository;
  now: () => Date;
}

export interface AdjustmentOptions {
  /** From `If-Match`: the product must exist, or be at the version the client read. */
  precondition?: VersionPrecondition;
  /**
   * From `Idempotency-Key`: the adjustment is recorded under it for 24 hours, in its own write, so
   * a retry of the same request answers REPEATED and adds nothing; another request, KEY_REUSED.
   * Only an adjustment that was made holds its key: a refused one can be retried with it.
   */
  idempotencyKey?: string;
}

/**
 * Adds (or, negative, removes) units of a product, atomically and never below zero. Every outcome
 * is a value; each refusal changed nothing.
 */
export const adjustStock =
  (deps: AdjustmentDeps) =>
  async (
    sku: string,
    request: AdjustStockRequest,
    options: AdjustmentOptions = {},
  ): Promise<AdjustStockResult> =>
    deps.inventory.adjustStock(
      sku,
      {
        delta: request.delta,
        ...(request.reason === undefined ? {} : { reason: request.reason }),
        ...(options.precondition === undefined ? {} : { precondition: options.precondition }),
        ...(options.idempotencyKey === undefined
          ? {}
          : { idempotency: { key: options.idempotencyKey, requestHash: adjustmentHash(request) } }),
      },
      deps.now(),
    );
