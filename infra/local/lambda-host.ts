import type { Context } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LogLevel } from '@aws-lambda-powertools/logger/types';
import { withLogScope, type LogScope } from '../../shared/logger.ts';
import { withMetricsScope, type MetricsScope } from '../../shared/metrics.ts';
import { noFaults, type FaultInjector } from './faults.ts';
import type { TaskInvocation } from './step-functions/index.ts';
import type { FunctionSpec } from './template.ts';

/*
 * Runs the stack's Lambda handlers in this process, the way the Lambda runtime would call them.
 * Each handler module is imported once (its cold start) with the environment the stack gives that
 * function, so its module-scope configuration parses exactly what it would parse on AWS.
 *
 * Logs: each invocation (and each module's import) runs in a log scope (shared/logger.ts
 * `withLogScope`), so that the shared `logger` writes with the function's own
 * POWERTOOLS_SERVICE_NAME and POWERTOOLS_LOG_LEVEL, as each function's own process would, plus the
 * keys `function_name`, `function_request_id` and, when the event tells it, `orderId`. A failed
 * invocation, whatever called it, prints one line (`log`):
 *   lambda ReserveStock… failed (task ReserveStock, execution 6f0c…, order 6f0c…): Error: …
 *
 * Metrics: each invocation runs in a metrics scope too (shared/metrics.ts `withMetricsScope`), with
 * the function's service and POWERTOOLS_METRICS_NAMESPACE, so its EMF documents (what CloudWatch
 * Logs would read from its stdout) reach `onMetrics` and nobody else's flush; none go to stdout.
 *
 * Not mirrored: isolation between functions (they share one process, so module state of shared
 * code is shared too, and `process.env` at invocation time is the runtime's plus the shared base
 * variables, not the function's own),
 * memory limits, concurrency limits, and freezing between invocations; log lines say `cold_start`
 * true on every invocation, as each invocation's scope has a logger of its own. Timeouts are
 * enforced by failing the invocation with `Sandbox.Timedout`; the handler's promise is left to
 * settle.
 *
 * Fault injection (`LOCAL_FAULTS`, faults.ts) applies to saga task invocations only (`invokeTask`, what
 * the Step Functions endpoint calls), never to `invoke` (the HTTP API, stream pollers, schedules):
 * - `lambda.throttle`: refused before the handler runs, as Lambda refuses an invocation over the
 *   concurrency limit (`Lambda.TooManyRequestsException`, "Rate Exceeded.").
 * - `lambda.lost-response`: the handler runs to completion (its writes commit), then the invocation
 *   fails with `Sandbox.Timedout`, at once rather than after the function's timeout. A handler that
 *   throws keeps its own error.
 */

type Handler = (event: unknown, context: Context) => Promise<unknown>;

export interface LambdaHost {
  /** Invokes by logical id, function name or ARN; rejects with an Error whose `name` is the error type. */
  invoke(functionRef: string, event: unknown): Promise<unknown>;
  /** As `invoke`, for a saga state's task: the Lambda faults in force apply (see the top comment). */
  invokeTask(functionRef: string, event: unknown, task: TaskInvocation): Promise<unknown>;
  functionArn(logicalId: string): string;
  /**
   * Whether `error` is a failed invocation's, already printed as its one line: a caller that
   * reports errors of its own (the HTTP gateway, a stream poller) skips these.
   */
  reported(error: unknown): boolean;
}

export interface LambdaHostOptions {
  projectRoot: string;
  functions: FunctionSpec[];
  /** Variables every function sees (endpoints, credentials, local secrets); they win over the stack's. */
  baseEnvironment: Record<string, string>;
  region: string;
  accountId: string;
  /** The faults `invokeTask` injects; default none. */
  faults?: FaultInjector;
  /** Where a failed invocation's one line goes; default stderr. */
  log?: (line: string) => void;
  /** Receives every EMF document a function flushes, one JSON line each; default: dropped. */
  onMetrics?: (emf: string) => void;
}

export class LambdaTimeoutError extends Error {
  constructor(functionName: string, seconds: number, options?: ErrorOptions) {
    super(`Task timed out after ${seconds} seconds (${functionName})`, options);
    this.name = 'Sandbox.Timedout';
  }
}

/** What Lambda answers an invocation over the function's or the account's concurrency limit. */
export class LambdaThrottledError extends Error {
  readonly reason = 'ConcurrentInvocationLimitExceeded';
  constructor(options?: ErrorOptions) {
    super('Rate Exceeded.', options);
    this.name = 'Lambda.TooManyRequestsException';
  }
}

const LOG_LEVELS = new Set(['DEBUG', 'INFO', 'WARN', 'ERROR', 'CRITICAL', 'SILENT', 'TRACE']);

/** The function's own service name and level, from the environment the stack gives it. */
function logScopeOf(spec: FunctionSpec, environment: Record<string, string>): LogScope {
  const level = environment.POWERTOOLS_LOG_LEVEL?.toUpperCase();
  return {
    serviceName: environment.POWERTOOLS_SERVICE_NAME || spec.logicalId,
    ...(level && LOG_LEVELS.has(level) ? { logLevel: level as LogLevel } : {}),
  };
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string | undefined =>
  typeof value === 'string' && value !== '' ? value : undefined;

/**
 * The order an invocation is about, when its event says so: a saga task's payload (`orderId`), a
 * route's path or query (`/orders/{orderId}`, `?orderId=`), a Stripe webhook's object
 * (`metadata.orderId`), or a stream batch whose records all belong to one order.
 */
export function orderIdOf(event: unknown): string | undefined {
  if (!isObject(event)) return undefined;
  const direct = text(event.orderId);
  if (direct) return direct;
  for (const bag of [event.pathParameters, event.queryStringParameters]) {
    const fromRoute = isObject(bag) ? text(bag.orderId) : undefined;
    if (fromRoute) return fromRoute;
  }
  if (typeof event.body === 'string' && event.isBase64Encoded !== true && event.body.length <= 65_536) {
    try {
      const body: unknown = JSON.parse(event.body);
      const object = isObject(body) && isObject(body.data) ? body.data.object : undefined;
      const metadata = isObject(object) ? object.metadata : undefined;
      const fromStripe = isObject(metadata) ? text(metadata.orderId) : undefined;
      if (fromStripe) return fromStripe;
    } catch {
      // Not JSON: nothing to tell.
    }
  }
  if (Array.isArray(event.Records)) {
    const orders = new Set<string>();
    for (const record of event.Records as unknown[]) {
      const images = isObject(record) && isObject(record.dynamodb) ? record.dynamodb : {};
      for (const image of [images.NewImage, images.OldImage]) {
        if (!isObject(image)) continue;
        const orderId = isObject(image.orderId) ? text(image.orderId.S) : undefined;
        const pk = isObject(image.pk) ? text(image.pk.S) : undefined;
        const id = orderId ?? (pk?.startsWith('ORDER#') ? pk.slice('ORDER#'.length) : undefined);
        if (id) orders.add(id);
      }
    }
    if (orders.size === 1) return [...orders][0];
  }
  return undefined;
}

/** What called the function, from its event (or the saga task): for the failure line. */
function triggerOf(event: unknown, task?: TaskInvocation): string {
  if (task) return `task ${task.stateName}, execution ${task.executionArn.split(':').at(-1) ?? ''}`;
  if (isObject(event)) {
    if (typeof event.routeKey === 'string') return event.routeKey;
    if (Array.isArray(event.Records)) {
      const [first] = event.Records as unknown[];
      const arn = isObject(first) ? text(first.eventSourceARN) : undefined;
      const table = arn?.split(':table/')[1]?.split('/')[0];
      return `stream ${table ?? '?'}, ${event.Records.length} record(s)`;
    }
    if (event.source === 'aws.events') return 'schedule';
  }
  return 'invoke';
}

async function importWithEnvironment(
  file: string,
  environment: Record<string, string>,
  scope: LogScope,
  metricsScope: MetricsScope,
): Promise<Handler> {
  const saved = process.env;
  process.env = { ...saved, ...environment };
  try {
    const module = (await withMetricsScope(metricsScope, () =>
      withLogScope(scope, () => import(pathToFileURL(file).href)),
    )) as { handler?: Handler };
    if (typeof module.handler !== 'function') throw new Error(`${file} exports no handler`);
    return module.handler;
  } finally {
    process.env = saved;
  }
}

export async function startLambdaHost(options: LambdaHostOptions): Promise<LambdaHost> {
  const functionArn = (logicalId: string) =>
    `arn:aws:lambda:${options.region}:${options.accountId}:function:${logicalId}`;
  const handlers = new Map<
    string,
    { spec: FunctionSpec; handler: Handler; logScope: LogScope; metricsScope: MetricsScope }
  >();
  const log = options.log ?? ((line: string) => console.error(line));
  // A document the sink cannot take is reported, never the invocation's failure: on AWS a bad EMF
  // line is only a log line CloudWatch does not turn into metrics.
  const writeMetrics = (logicalId: string) => (emf: string) => {
    try {
      options.onMetrics?.(emf);
    } catch (error) {
      log(`lambda ${logicalId}: metrics not recorded: ${String(error)}`);
    }
  };
  const reported = new WeakSet<object>();
  // The SDK resolves endpoints and credentials lazily, at the first call, from the process's
  // environment: the variables every function shares must be there too, not only at import.
  Object.assign(process.env, options.baseEnvironment);
  // One at a time: each import swaps process.env for the duration of its module evaluation.
  for (const spec of options.functions) {
    const environment: Record<string, string> = {
      ...spec.environment,
      ...options.baseEnvironment,
      AWS_LAMBDA_FUNCTION_NAME: spec.logicalId,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(spec.memorySize),
    };
    const logScope = logScopeOf(spec, environment);
    const metricsScope: MetricsScope = {
      serviceName: logScope.serviceName,
      ...(environment.POWERTOOLS_METRICS_NAMESPACE
        ? { namespace: environment.POWERTOOLS_METRICS_NAMESPACE }
        : {}),
      write: writeMetrics(spec.logicalId),
    };
    const handler = await importWithEnvironment(
      join(options.projectRoot, spec.entry),
      environment,
      { ...logScope, keys: { function_name: spec.logicalId } },
      metricsScope,
    );
    handlers.set(spec.logicalId, { spec, handler, logScope, metricsScope });
  }

  const faults = options.faults ?? noFaults();

  const resolve = (functionRef: string) => {
    const name = functionRef.includes(':function:')
      ? functionRef.split(':function:')[1]!.split(':')[0]!
      : functionRef;
    const target = handlers.get(name);
    if (!target) {
      const error = new Error(`Function not found: ${functionRef}`);
      error.name = 'ResourceNotFoundException';
      throw error;
    }
    return { name, ...target };
  };

  /** The invocation's one failure line, whoever called it; the error goes on unchanged. */
  const failed = (
    target: ReturnType<typeof resolve>,
    event: unknown,
    error: unknown,
    task?: TaskInvocation,
  ) => {
    // Marked so that callers with error reports of their own skip it; the same error object thrown by
    // a later invocation (a memoized failure) still gets that invocation's line.
    if (typeof error === 'object' && error !== null) reported.add(error);
    const orderId = orderIdOf(event);
    const message = String(error).replace(/\s*\n\s*/g, ' ');
    log(
      `lambda ${target.name} failed (${triggerOf(event, task)}${orderId ? `, order ${orderId}` : ''}): ${message}`,
    );
  };

  const run = async (target: ReturnType<typeof resolve>, event: unknown): Promise<unknown> => {
    const { name } = target;
    const deadline = Date.now() + target.spec.timeoutSeconds * 1000;
    const requestId = randomUUID();
    const orderId = orderIdOf(event);
    const scope: LogScope = {
      ...target.logScope,
      keys: { function_name: name, function_request_id: requestId, ...(orderId ? { orderId } : {}) },
    };
    const context = {
      awsRequestId: requestId,
      functionName: name,
      functionVersion: '$LATEST',
      invokedFunctionArn: functionArn(name),
      memoryLimitInMB: String(target.spec.memorySize),
      logGroupName: `/aws/lambda/${name}`,
      logStreamName: `local/${name}`,
      callbackWaitsForEmptyEventLoop: true,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => {},
      fail: () => {},
      succeed: () => {},
    } satisfies Context;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new LambdaTimeoutError(name, target.spec.timeoutSeconds)),
        deadline - Date.now(),
      );
    });
    try {
      // Event and result cross a process boundary as JSON on AWS.
      const input: unknown = JSON.parse(JSON.stringify(event ?? null));
      const invocation = withMetricsScope(target.metricsScope, () =>
        withLogScope(scope, () => target.handler(input, context)),
      );
      const result = await Promise.race([invocation, timeout]);
      return result === undefined ? null : JSON.parse(JSON.stringify(result));
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    functionArn,
    reported: (error) => typeof error === 'object' && error !== null && reported.has(error),
    async invoke(functionRef, event) {
      const target = resolve(functionRef);
      try {
        return await run(target, event);
      } catch (error) {
        failed(target, event, error);
        throw error;
      }
    },
    async invokeTask(functionRef, event, task) {
      const target = resolve(functionRef);
      const context = { ...task, functionName: target.name };
      try {
        if (faults.roll('lambda.throttle', context)) throw new LambdaThrottledError();
        const result = await run(target, event);
        if (faults.roll('lambda.lost-response', context))
          throw new LambdaTimeoutError(target.name, target.spec.timeoutSeconds);
        return result;
      } catch (error) {
        // As Lambda's own log would show it; the state machine decides whether it retries.
        failed(target, event, error, task);
        throw error;
      }
    },
  };
}
