import { randomBytes } from 'node:crypto';
import { namedError, type Json } from './common.ts';

/*
 * Task tokens of waitForTaskToken tasks: issued as `$$.Task.Token` reads, open until the task ends
 * (SendTaskSuccess/Failure, its timeout, or the execution ending), closed for good afterwards.
 */

/** What a token belongs to: the execution's open tokens and the token `$$.Task.Token` reads as. */
interface TokenHolder {
  /** Rotated whenever a waitForTaskToken task takes it. */
  currentToken: string;
  openTokens: Set<TaskToken>;
}

export interface TaskToken {
  token: string;
  execution: TokenHolder;
  taskName: string;
  openedAt: number;
  open: boolean;
  timer: NodeJS.Timeout | undefined;
  resolve(value: Json): void;
  reject(error: Error): void;
}

type TokenOutcome = { value: Json } | { error: Error };

export interface TaskTokens {
  /**
   * Hands `holder.currentToken` to the task (rotating it) and opens it; the promise settles with the
   * token's outcome, or States.Timeout after `timeoutMs`. Synchronous, as the library requires.
   */
  issue(
    holder: TokenHolder,
    taskName: string,
    timeoutMs: number,
  ): { entry: TaskToken; result: Promise<Json> };
  /** Closes the token and settles its task, unless it is closed already. */
  settle(entry: TaskToken, outcome: TokenOutcome): void;
  /** Every token ever issued, open or closed; undefined for one never issued. */
  find(token: string): TaskToken | undefined;
  /** Closes every token without settling its task. */
  closeAll(): void;
}

export function newToken(): string {
  return randomBytes(96).toString('base64url');
}

export function createTaskTokens(): TaskTokens {
  const tokens = new Map<string, TaskToken>();

  function close(entry: TaskToken): void {
    entry.open = false;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    entry.execution.openTokens.delete(entry);
  }

  function settle(entry: TaskToken, outcome: TokenOutcome): void {
    if (!entry.open) return;
    close(entry);
    if ('error' in outcome) entry.reject(outcome.error);
    else entry.resolve(outcome.value);
  }

  function issue(holder: TokenHolder, taskName: string, timeoutMs: number) {
    const token = holder.currentToken;
    holder.currentToken = newToken();
    const { promise, resolve, reject } = Promise.withResolvers<Json>();
    const entry: TaskToken = {
      token,
      execution: holder,
      taskName,
      openedAt: Date.now(),
      open: true,
      timer: undefined,
      resolve,
      reject,
    };
    tokens.set(token, entry);
    holder.openTokens.add(entry);
    // The library races the override with its own TimeoutSeconds timer, which it creates right after this
    // call returns. Ours, of the same duration, is created a microtask later, so it never fires first
    // (Node stamps each timer with the current time, which can move a millisecond between two calls):
    // the library fails the state with its genuine States.Timeout (which `States.TaskFailed` does not
    // catch), and ours then closes the token. Our settlement one macrotask later is ignored; it only
    // matters if the library somehow did not time out.
    queueMicrotask(() => {
      if (!entry.open) return;
      entry.timer = setTimeout(() => {
        if (!entry.open) return;
        close(entry);
        setImmediate(() => reject(namedError('States.Timeout', 'States.Timeout')));
      }, timeoutMs);
    });
    return { entry, result: promise };
  }

  return {
    issue,
    settle,
    find: (token) => tokens.get(token),
    closeAll() {
      for (const entry of tokens.values()) close(entry);
    },
  };
}
