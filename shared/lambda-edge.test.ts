import type { Context } from 'aws-lambda';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { eventHandler, InvalidCommandError, taskHandler } from './lambda-edge.ts';
import { withLogScope } from './logger.ts';
import { Metric } from './metric-names.ts';
import { addCount, withMetricsScope } from './metrics.ts';
import { cancellationReasonFor, isSagaOutcome, SagaOutcome, SagaOutcomeError, TASK_FAULTS } from './saga.ts';

const context = {
  functionName: 'ReserveStock',
  functionVersion: '$LATEST',
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:ReserveStock',
  memoryLimitInMB: '128',
  awsRequestId: 'req-1',
  getRemainingTimeInMillis: () => 10_000,
} as Context;

/** Invokes `handler` as the local Lambda host does (log and metrics scopes); its result or error, and its EMF. */
async function invoke(
  handler: (event: never, context: Context) => Promise<unknown>,
  event: unknown,
): Promise<{ result?: unknown; error?: unknown; emf: Array<Record<string, unknown>> }> {
  const emf: Array<Record<string, unknown>> = [];
  const outcome = await withMetricsScope(
    { serviceName: 'inventory', write: (line) => emf.push(JSON.parse(line) as Record<string, unknown>) },
    () =>
      withLogScope({ serviceName: 'inventory', logLevel: 'SILENT' }, () =>
        handler(event as never, context).then(
          (result) => ({ result }),
          (error: unknown) => ({ error }),
        ),
      ),
  );
  return { ...outcome, emf };
}

const CommandSchema = z.object({ orderId: z.string().min(1), quantity: z.coerce.number().int().default(1) });

describe('taskHandler', () => {
  it('hands `run` the command as its schema parses it', async () => {
    const seen: unknown[] = [];
    const handler = taskHandler(CommandSchema, async (command) => {
      seen.push(command);
      return { reserved: command.quantity };
    });
    const { result } = await invoke(handler, { orderId: 'o-1', extra: 'dropped' });
    expect(result).toEqual({ reserved: 1 });
    expect(seen).toEqual([{ orderId: 'o-1', quantity: 1 }]);
  });

  it('fails an invalid command before `run` with an error the saga neither retries nor takes for an outcome', async () => {
    let ran = false;
    const handler = taskHandler(CommandSchema, async () => {
      ran = true;
    });
    const { error } = await invoke(handler, { orderId: '', quantity: 'many' });
    expect(ran).toBe(false);
    expect(error).toBeInstanceOf(InvalidCommandError);
    const { name, message } = error as Error;
    expect(name).toBe('InvalidCommandError');
    expect(TASK_FAULTS).not.toContain(name);
    expect(isSagaOutcome(name)).toBe(false);
    expect(cancellationReasonFor(name)).toBe('PROCESSING_ERROR');
    expect(message).toMatch(/^The command is invalid: orderId: .+; quantity: .+/);
  });

  it("passes `run`'s own errors on as they are: the state machine decides by their names", async () => {
    const handler = taskHandler(CommandSchema, async () => {
      throw new SagaOutcomeError(SagaOutcome.OutOfStock, 'Not enough stock: mug');
    });
    const { error } = await invoke(handler, { orderId: 'o-1' });
    expect(error).toBeInstanceOf(SagaOutcomeError);
    expect((error as Error).name).toBe('OutOfStockError');
  });

  it("flushes the invocation's metrics when it ends, also when it fails", async () => {
    const handler = taskHandler(CommandSchema, async ({ orderId }) => {
      addCount(Metric.StockRefusals);
      if (orderId === 'o-fail') throw new Error('boom');
    });
    for (const orderId of ['o-ok', 'o-fail']) {
      const { emf } = await invoke(handler, { orderId });
      expect(emf).toEqual([expect.objectContaining({ service: 'inventory', StockRefusals: 1 })]);
    }
  });
});

describe('eventHandler', () => {
  it('hands `run` the event as it came, with the edge around it', async () => {
    const handler = eventHandler(async (event: { Records: unknown[] }) => {
      addCount(Metric.EventsPublished, undefined, event.Records.length);
      return { batchItemFailures: [] };
    });
    const { result, emf } = await invoke(handler, { Records: [{}, {}] });
    expect(result).toEqual({ batchItemFailures: [] });
    expect(emf).toEqual([expect.objectContaining({ EventsPublished: 2 })]);
  });
});
