import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { describe, expect, it } from 'vitest';
import { transactWrite, TransactionCancelledError } from './dynamo.ts';
import { ConcurrentChangeError, SagaFault, TASK_FAULTS } from './saga.ts';

/*
 * DynamoDB Local serialises contending transactions instead of cancelling them with
 * TransactionConflict as AWS does, so this one failure is injected with a fake client.
 */
function clientFailing(codes: Array<string[] | undefined>) {
  let calls = 0;
  const client = {
    send: async () => {
      const reasons = codes[calls++];
      if (!reasons) return {};
      throw new TransactionCanceledException({
        message: 'Transaction cancelled',
        $metadata: {},
        CancellationReasons: reasons.map((Code) => ({ Code })),
      });
    },
  } as unknown as DynamoDBDocumentClient;
  return { client, calls: () => calls };
}

const put = { Put: { TableName: 'orders', Item: { pk: 'a', sk: 'b' } } };

describe('transactWrite', () => {
  it('retries a transaction cancelled only by conflicts, until it goes through', async () => {
    const fake = clientFailing([['TransactionConflict', 'None'], ['None', 'TransactionConflict'], undefined]);
    await transactWrite(fake.client, [put, put]);
    expect(fake.calls()).toBe(3);
  });

  it('gives up after a few conflicting attempts with a fault the saga retries, the reasons as its cause', async () => {
    const fake = clientFailing(Array.from({ length: 10 }, () => ['TransactionConflict']));
    const error = await transactWrite(fake.client, [put]).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ConcurrentChangeError);
    expect((error as Error).name).toBe(SagaFault.ConcurrentChange);
    expect(TASK_FAULTS).toContain((error as Error).name);
    const cause = (error as Error).cause;
    expect(cause).toBeInstanceOf(TransactionCancelledError);
    expect((cause as TransactionCancelledError).reasons).toEqual([
      { code: 'TransactionConflict', item: undefined },
    ]);
    expect(fake.calls()).toBe(4);
  });

  it('does not retry a failed condition: that is an answer, not a fault', async () => {
    const fake = clientFailing([['ConditionalCheckFailed', 'TransactionConflict']]);
    await expect(transactWrite(fake.client, [put, put])).rejects.toBeInstanceOf(TransactionCancelledError);
    expect(fake.calls()).toBe(1);
  });
});
