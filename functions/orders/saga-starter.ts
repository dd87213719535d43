import { ExecutionAlreadyExists, StartExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { Order } from './order.ts';

/** What the saga's first state receives. */
export interface SagaInput {
  orderId: string;
  customerId: string;
  items: Array<{ sku: string; quantity: number }>;
  currency: string;
  /** Always present (null when absent): a JSONPath to a missing field fails the state on AWS. */
  paymentMethodId: string | null;
}

export interface SagaStarter {
  /** Starts the order's saga; the execution is named after the order, so starting twice is harmless. */
  start(order: Order): Promise<void>;
}

export function sagaInput(order: Order): SagaInput {
  return {
    orderId: order.orderId,
    customerId: order.customerId,
    items: order.items.map(({ sku, quantity }) => ({ sku, quantity })),
    currency: order.currency,
    paymentMethodId: order.paymentMethodId ?? null,
  };
}

export function stepFunctionsSagaStarter(client: SFNClient, stateMachineArn: string): SagaStarter {
  return {
    async start(order) {
      try {
        await client.send(
          new StartExecutionCommand({
            stateMachineArn,
            name: order.orderId,
            input: JSON.stringify(sagaInput(order)),
          }),
        );
      } catch (error) {
        // Already started (a retried request, or the execution already finished): nothing to do.
        if (!(error instanceof ExecutionAlreadyExists)) throw error;
      }
    },
  };
}
