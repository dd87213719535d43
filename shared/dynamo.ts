import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { TransactWriteCommand, type DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConcurrentChangeError } from './saga.ts';

type TransactItems = NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]['TransactItems']>;
export type TransactItem = TransactItems[number];

/** Why each item of a cancelled transaction failed, in the order the items were given. */
export interface CancellationReason {
  code: string | undefined;
  /** The item as it was, when the write asked for ALL_OLD on a failed condition. */
  item: Record<string, unknown> | undefined;
}

export class TransactionCancelledError extends Error {
  readonly reasons: CancellationReason[];
  constructor(reasons: CancellationReason[], options?: ErrorOptions) {
    super(`Transaction cancelled: ${reasons.map((reason) => reason.code ?? 'None').join(', ')}`, options);
    this.name = 'TransactionCancelledError';
    this.reasons = reasons;
  }
}

const CONFLICT_ATTEMPTS = 4;

/**
 * TransactWriteItems that turns a cancellation into a typed error carrying per-item reasons.
 * A cancellation caused only by conflicting concurrent transactions (which DynamoDB on AWS raises
 * where DynamoDB Local serialises) is retried with jittered backoff: a cancelled transaction wrote
 * nothing, so repeating it is safe, and its conditions then judge against the winner's result.
 */
export async function transactWrite(
  client: DynamoDBDocumentClient,
  items: TransactItem[],
  clientRequestToken?: string,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.send(
        new TransactWriteCommand({ TransactItems: items, ClientRequestToken: clientRequestToken }),
      );
      return;
    } catch (error) {
      if (!(error instanceof TransactionCanceledException)) throw error;
      const reasons = (error.CancellationReasons ?? []).map((reason) => ({
        code: reason.Code,
        item: reason.Item ? unmarshall(reason.Item as Parameters<typeof unmarshall>[0]) : undefined,
      }));
      const onlyConflicts =
        reasons.some((reason) => reason.code === 'TransactionConflict') &&
        reasons.every(
          (reason) => !reason.code || reason.code === 'None' || reason.code === 'TransactionConflict',
        );
      if (!onlyConflicts) throw new TransactionCancelledError(reasons, { cause: error });
      // Still only conflicts: a fault (the saga retries the whole step), not a failed condition.
      if (attempt >= CONFLICT_ATTEMPTS) {
        throw new ConcurrentChangeError(`Transaction kept conflicting after ${attempt} attempts`, {
          cause: new TransactionCancelledError(reasons, { cause: error }),
        });
      }
      await sleep(Math.random() * 25 * 2 ** attempt);
    }
  }
}
