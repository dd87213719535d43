import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { logger, orderLogKeys, withLogScope } from './logger.ts';

/** The JSON lines written while `run` runs. */
async function linesOf(run: () => Promise<unknown>): Promise<Array<Record<string, unknown>>> {
  const written: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    written.push(String(chunk));
    return true;
  });
  const errors = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    written.push(String(chunk));
    return true;
  });
  try {
    await run().catch(() => undefined);
  } finally {
    spy.mockRestore();
    errors.mockRestore();
  }
  return written
    .flatMap((chunk) => chunk.split('\n'))
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

afterEach(() => vi.restoreAllMocks());

describe('orderLogKeys', () => {
  const handler = middy<{ fail?: boolean }>()
    .use(orderLogKeys({ logFailures: true }))
    .handler(async (event) => {
      logger.info('working');
      if (event.fail) throw new Error('boom');
      return 'ok';
    });
  /** As on AWS: no local log scope. */
  const invokeOnAws = (event: object) => handler(event as never, { functionName: 'ReserveStock' } as Context);
  const invoke = (event: object) =>
    withLogScope({ serviceName: 'inventory', logLevel: 'INFO' }, () =>
      handler(event as never, {} as Context),
    );

  it('puts the order of a saga command or a path on every line, and takes it off when the invocation ends', async () => {
    const first = await linesOf(() => invoke({ orderId: 'o-1' }));
    expect(first).toEqual([
      expect.objectContaining({ message: 'working', service: 'inventory', orderId: 'o-1' }),
    ]);
    const byPath = await linesOf(() => invoke({ pathParameters: { orderId: 'o-2' } }));
    expect(byPath[0]).toMatchObject({ orderId: 'o-2' });
    const none = await linesOf(() => invoke({}));
    expect(none[0]).not.toHaveProperty('orderId');
  });

  it('takes the order off after an invocation that fails, too', async () => {
    await linesOf(() => invoke({ orderId: 'o-3', fail: true }));
    const next = await linesOf(() => invoke({}));
    expect(next[0]).not.toHaveProperty('orderId');
  });

  it('on AWS logs one line for an invocation that fails, with its function, order and error', async () => {
    const lines = await linesOf(() => invokeOnAws({ orderId: 'o-4', fail: true }));
    expect(lines.map((line) => line.message)).toEqual(['working', 'invocation failed']);
    expect(lines[1]).toMatchObject({
      level: 'ERROR',
      orderId: 'o-4',
      function_name: 'ReserveStock',
      error: expect.objectContaining({ message: 'boom' }),
    });
  });

  it('leaves that line to the local Lambda host inside its log scope', async () => {
    const lines = await linesOf(() => invoke({ orderId: 'o-5', fail: true }));
    expect(lines.map((line) => line.message)).toEqual(['working']);
  });
});
