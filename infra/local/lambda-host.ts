import type { Context } from 'aws-lambda';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { noFaults, type FaultInjector } from './faults.ts';
import type { TaskInvocation } from './step-functions.ts';
import type { FunctionSpec } from './template.ts';

/*
 * Runs the stack's Lambda handlers in this process, the way the Lambda runtime would call them.
 * Each handler module is imported once (its cold start) with the environment the stack gives that
 * function, so its module-scope configuration parses exactly what it would parse on AWS.
 *
 * Not mirrored: isolation between functions (they share one process, so module state of shared
 * code is shared too, and `process.env` at invocation time is the runtime's plus the shared base
 * variables, not the function's own),
 * memory limits, concurrency limits, and freezing between invocations. Timeouts are enforced by
 * failing the invocation with `Sandbox.Timedout`; the handler's promise is left to settle.
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

async function importWithEnvironment(file: string, environment: Record<string, string>): Promise<Handler> {
  const saved = process.env;
  process.env = { ...saved, ...environment };
  try {
    const module = (await import(pathToFileURL(file).href)) as { handler?: Handler };
    if (typeof module.handler !== 'function') throw new Error(`${file} exports no handler`);
    return module.handler;
  } finally {
    process.env = saved;
  }
}

export async function startLambdaHost(options: LambdaHostOptions): Promise<LambdaHost> {
  const functionArn = (logicalId: string) =>
    `arn:aws:lambda:${options.region}:${options.accountId}:function:${logicalId}`;
  const handlers = new Map<string, { spec: FunctionSpec; handler: Handler }>();
  // The SDK resolves endpoints and credentials lazily, at the first call, from the process's
  // environment: the variables every function shares must be there too, not only at import.
  Object.assign(process.env, options.baseEnvironment);
  // One at a time: each import swaps process.env for the duration of its module evaluation.
  for (const spec of options.functions) {
    const environment = {
      ...spec.environment,
      ...options.baseEnvironment,
      AWS_LAMBDA_FUNCTION_NAME: spec.logicalId,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(spec.memorySize),
    };
    const handler = await importWithEnvironment(join(options.projectRoot, spec.entry), environment);
    handlers.set(spec.logicalId, { spec, handler });
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

  const run = async (target: ReturnType<typeof resolve>, event: unknown): Promise<unknown> => {
    const { name } = target;
    const deadline = Date.now() + target.spec.timeoutSeconds * 1000;
    const context = {
      awsRequestId: randomUUID(),
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
      const result = await Promise.race([
        target.handler(JSON.parse(JSON.stringify(event ?? null)), context),
        timeout,
      ]);
      return result === undefined ? null : JSON.parse(JSON.stringify(result));
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    functionArn,
    invoke: async (functionRef, event) => run(resolve(functionRef), event),
    async invokeTask(functionRef, event, task) {
      const target = resolve(functionRef);
      const context = { ...task, functionName: target.name };
      if (faults.roll('lambda.throttle', context)) throw new LambdaThrottledError();
      const result = await run(target, event);
      if (faults.roll('lambda.lost-response', context))
        throw new LambdaTimeoutError(target.name, target.spec.timeoutSeconds);
      return result;
    },
  };
}
