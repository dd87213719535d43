import { Logger } from '@aws-lambda-powertools/logger';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { AsyncLocalStorage } from 'node:async_hooks';

/** What one invocation's log lines carry when several functions share a process (the local runtime). */
export interface LogScope {
  /** The function's `POWERTOOLS_SERVICE_NAME`: `orders`, `inventory`, `payments`, `bridge`, `health`. */
  serviceName: string;
  /** The function's `POWERTOOLS_LOG_LEVEL`; default Powertools' own (from the environment, else INFO). */
  logLevel?: LogLevel;
  /** Keys on every line of the invocation, e.g. `function_name`, `function_request_id`, `orderId`. */
  keys?: Record<string, string>;
}

interface ActiveScope {
  scope: LogScope;
  logger?: Logger;
}

const scopes = new AsyncLocalStorage<ActiveScope>();

/** Powertools reads POWERTOOLS_SERVICE_NAME and POWERTOOLS_LOG_LEVEL itself; the stack sets both. */
const processLogger = new Logger();

function current(): Logger {
  const active = scopes.getStore();
  if (!active) return processLogger;
  // Created on the first line the invocation logs: most invocations log nothing.
  active.logger ??= new Logger({
    serviceName: active.scope.serviceName,
    ...(active.scope.logLevel ? { logLevel: active.scope.logLevel } : {}),
    persistentKeys: active.scope.keys ?? {},
  });
  return active.logger;
}

/**
 * Runs `run` (one invocation, or one handler module's import) with log lines of its own: the
 * exported `logger` writes with the scope's service name, level and keys inside it, and keys a
 * handler appends stay in it.
 *
 * On AWS each function has a process of its own, and its environment names its service. The local
 * runtime imports every handler into one process, so one module-level logger would name one
 * service for all of them; its Lambda host runs each invocation in a scope instead.
 */
export function withLogScope<T>(scope: LogScope, run: () => T): T {
  return scopes.run({ scope }, run);
}

/**
 * The structured logger every module uses. A Powertools `Logger`: the process's own (its service
 * from `POWERTOOLS_SERVICE_NAME`), or inside `withLogScope` the invocation's.
 */
export const logger: Logger = new Proxy(processLogger, {
  get(_target, property) {
    const target = current();
    const value: unknown = Reflect.get(target, property, target);
    return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
  },
  set(_target, property, value) {
    return Reflect.set(current(), property, value);
  },
});

/** The order an invocation is about, where its event names one (a saga command, a path or query). */
function orderIdOf(event: unknown): string | undefined {
  if (typeof event !== 'object' || event === null) return undefined;
  const { orderId, pathParameters, queryStringParameters } = event as {
    orderId?: unknown;
    pathParameters?: { orderId?: unknown } | null;
    queryStringParameters?: { orderId?: unknown } | null;
  };
  const found = orderId ?? pathParameters?.orderId ?? queryStringParameters?.orderId;
  return typeof found === 'string' && found.length > 0 ? found : undefined;
}

/**
 * A middy middleware: every line an invocation logs carries the order it is about (`orderId`), on
 * AWS as locally; the key is removed when the invocation ends, so a warm function's next
 * invocation starts clean. With `logFailures` (the saga tasks and other non-HTTP handlers; the
 * HTTP edge logs its own 500s), an invocation that throws logs one line with its function, order
 * and error, for CloudWatch, whose own runtime line names no order. Inside the local runtime's log
 * scope the Lambda host prints that line instead, so it is not written twice.
 */
export function orderLogKeys(options: { logFailures?: boolean } = {}) {
  const clear = () => logger.removeKeys(['orderId']);
  return {
    before: (request: { event: unknown; context: { functionName?: string } }) => {
      clear(); // in case an earlier invocation ended where no later middleware ran
      const orderId = orderIdOf(request.event);
      if (orderId) logger.appendKeys({ orderId });
    },
    after: clear,
    onError: (request: { error: unknown; context: { functionName?: string } }) => {
      if (options.logFailures && !scopes.getStore()) {
        logger.error('invocation failed', {
          function_name: request.context?.functionName,
          error: request.error,
        });
      }
      clear();
    },
  };
}
