import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `read` until `done` holds for its value; never a fixed sleep. */
export async function pollUntil<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (done(last)) return last;
    await sleep(50);
  }
  throw new Error(`${what}: condition not met within ${timeoutMs} ms; last value ${JSON.stringify(last)}`);
}
