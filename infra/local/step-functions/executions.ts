import { randomUUID } from 'node:crypto';
import {
  ExecutionAbortedError,
  ExecutionError,
  ExecutionTimeoutError,
  type StateMachine,
} from 'aws-local-stepfunctions';
import { haltedError, isRecord, namedError, runtimeError, toJson, type Json } from './common.ts';
import type { Execution, ExecutionStatus } from './execution.ts';
import { consume, record, recordTerminal, type LibraryEvent } from './history.ts';
import { libraryStartingAt, taskTimeoutMs, type Machine, type TaskInfo } from './state-machines.ts';
import { newToken, type TaskTokens } from './task-tokens.ts';

/*
 * Executions and their runner: each attempt (the first, then every redrive) is one run of the
 * library, with its Task states dispatched here to the Lambda integrations.
 */

/** Which saga state invokes, so that the glue can name (and scope) what it injects. */
export interface TaskInvocation {
  stateName: string;
  executionArn: string;
}

/** Invokes the Lambda function a Task targets; throws an Error whose `name` is the Lambda errorType on failure. */
export type InvokeFunction = (
  functionArn: string,
  payload: unknown,
  task: TaskInvocation,
) => Promise<unknown>;

export interface Runner {
  /** Every execution started, by ARN. */
  readonly executions: Map<string, Execution>;
  executionArn(machine: Machine, name: string): string;
  start(machine: Machine, name: string, input: string): Execution;
  /** Why `execution` cannot be redriven now (AWS's redriveStatusReason), or undefined if it can. */
  notRedrivableReason(execution: Execution, now: number): string | undefined;
  /** Restarts a stopped execution at the state it stopped in; its history and ARN carry on. */
  redrive(execution: Execution, clientToken: string | undefined): void;
  /** Aborts a running execution; a no-op for a finished one. */
  stop(execution: Execution, error: string | undefined, cause: string | undefined): void;
}

type RunOptions = NonNullable<Parameters<StateMachine['run']>[1]>;
type TaskHandlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;

const MAX_HISTORY_EVENTS = 25_000;
const REDRIVE_TOKENS_KEPT = 10;

/** A Lambda function error as Step Functions reports it: Error = errorType, Cause = the error payload. */
function lambdaError(thrown: unknown): Error {
  const errorType = thrown instanceof Error ? thrown.name : 'Error';
  const errorMessage = thrown instanceof Error ? thrown.message : String(thrown);
  const trace = thrown instanceof Error && thrown.stack ? thrown.stack.split('\n') : [];
  return namedError(errorType, JSON.stringify({ errorType, errorMessage, trace }));
}

function lambdaInvokeResult(payload: Json): Json {
  const requestId = randomUUID();
  const headers = {
    Connection: 'keep-alive',
    'Content-Length': String(Buffer.byteLength(JSON.stringify(payload))),
    'Content-Type': 'application/json',
    Date: new Date().toUTCString(),
    'X-Amz-Executed-Version': '$LATEST',
    'x-amzn-Remapped-Content-Length': '0',
    'x-amzn-RequestId': requestId,
  };
  return {
    ExecutedVersion: '$LATEST',
    Payload: payload,
    SdkHttpMetadata: {
      AllHttpHeaders: Object.fromEntries(Object.entries(headers).map(([key, value]) => [key, [value]])),
      HttpHeaders: headers,
      HttpStatusCode: 200,
    },
    SdkResponseMetadata: { RequestId: requestId },
    StatusCode: 200,
  };
}

/** Settles with `work`, or rejects as soon as the execution ends, so the library's Task timer clears. */
function untilHalted(execution: Execution, work: Promise<Json>): Promise<Json> {
  const signal = execution.halt.signal;
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(haltedError());
  }
  return new Promise((resolve, reject) => {
    const onHalt = () => reject(haltedError());
    signal.addEventListener('abort', onHalt, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onHalt);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onHalt);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

export function createRunner(options: {
  region: string;
  accountId: string;
  invoke: InvokeFunction;
  tokens: TaskTokens;
  redriveWindowMs: number;
  retryDelayMs: number | undefined;
}): Runner {
  const { region, accountId, invoke, tokens, redriveWindowMs } = options;
  const executions = new Map<string, Execution>();

  // ---- task dispatch --------------------------------------------------------------------------------

  function functionArn(name: unknown): string {
    if (typeof name !== 'string' || name === '')
      throw runtimeError('lambda:invoke needs a FunctionName string');
    if (name.startsWith('arn:')) return name;
    if (/^\d{12}:function:/.test(name)) return `arn:aws:lambda:${region}:${name}`;
    return `arn:aws:lambda:${region}:${accountId}:function:${name}`;
  }

  function qualifiedFunctionArn(parameters: Record<string, unknown>): string {
    const arn = functionArn(parameters.FunctionName);
    const qualifier = parameters.Qualifier;
    return typeof qualifier === 'string' && qualifier !== '' ? `${arn}:${qualifier}` : arn;
  }

  async function invokeLambda(arn: string, payload: unknown, task: TaskInvocation): Promise<Json> {
    let result: unknown;
    try {
      result = await invoke(arn, payload, task);
    } catch (error) {
      throw lambdaError(error);
    }
    return toJson(result);
  }

  /**
   * Must stay synchronous up to the token hand-over: the library evaluates Parameters (reading
   * `$$.Task.Token`) and calls this override within the same synchronous run.
   */
  function waitForTaskToken(execution: Execution, task: TaskInfo, input: Json): Promise<Json> {
    const { entry, result } = tokens.issue(execution, task.name, taskTimeoutMs(task, input));
    try {
      const parameters = isRecord(input) ? input : {};
      invokeLambda(qualifiedFunctionArn(parameters), parameters.Payload ?? null, {
        stateName: task.name,
        executionArn: execution.arn,
      }).then(
        () => {},
        (error: Error) => tokens.settle(entry, { error }),
      );
    } catch (error) {
      tokens.settle(entry, { error: error instanceof Error ? error : new Error(String(error)) });
    }
    return result;
  }

  function runTask(execution: Execution, task: TaskInfo, input: Json): Promise<Json> {
    if (execution.halt.signal.aborted) return Promise.reject(haltedError());
    try {
      switch (task.kind) {
        case 'lambda-function':
          return untilHalted(
            execution,
            invokeLambda(task.resource, input, { stateName: task.name, executionArn: execution.arn }),
          );
        case 'lambda-invoke': {
          const parameters = isRecord(input) ? input : {};
          const arn = qualifiedFunctionArn(parameters);
          return untilHalted(
            execution,
            invokeLambda(arn, parameters.Payload ?? null, {
              stateName: task.name,
              executionArn: execution.arn,
            }).then(lambdaInvokeResult),
          );
        }
        case 'lambda-invoke-wait':
          return waitForTaskToken(execution, task, input);
        case 'unsupported':
          throw runtimeError(
            `Task state '${task.name}' has Resource '${task.resource}', which the local Step Functions ` +
              'endpoint does not support: use a Lambda function ARN, arn:aws:states:::lambda:invoke or ' +
              'arn:aws:states:::lambda:invoke.waitForTaskToken',
          );
      }
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** A Parallel branch or Map iteration failed: the tasks still waiting in its siblings end. */
  function closeNestedTokens(execution: Execution, parentState: string, before: number): void {
    for (const entry of [...execution.openTokens]) {
      const task = execution.machine.tasks.get(entry.taskName);
      if (task?.ancestors.includes(parentState) && entry.openedAt <= before) {
        tokens.settle(entry, { error: haltedError() });
      }
    }
  }

  // ---- execution lifecycle --------------------------------------------------------------------------

  function finish(
    execution: Execution,
    status: Exclude<ExecutionStatus, 'RUNNING'>,
    fields: { output?: string; error?: string; cause?: string },
  ): boolean {
    if (execution.status !== 'RUNNING') return false;
    execution.status = status;
    execution.stopDate = Date.now();
    execution.output = fields.output;
    execution.error = fields.error;
    execution.cause = fields.cause;
    for (const entry of [...execution.openTokens]) tokens.settle(entry, { error: haltedError() });
    execution.halt.abort();
    const stopDate = execution.stopDate;
    execution.historyComplete = execution.consumed.then(() =>
      recordTerminal(execution, status, fields, stopDate),
    );
    return true;
  }

  function onRunSettled(execution: Execution, attempt: number, result: Promise<Json>): void {
    result.then(
      (output) => {
        if (execution.redriveCount !== attempt) return;
        finish(execution, 'SUCCEEDED', { output: JSON.stringify(output ?? null) });
      },
      (error: unknown) => {
        // A stopped attempt's run settles later, perhaps after a redrive started the next one.
        if (execution.redriveCount !== attempt) return;
        if (error instanceof ExecutionAbortedError) {
          finish(execution, 'ABORTED', {});
        } else if (error instanceof ExecutionTimeoutError) {
          finish(execution, 'TIMED_OUT', {
            error: 'States.Timeout',
            cause: 'The execution timed out (state machine TimeoutSeconds)',
          });
        } else if (error instanceof ExecutionError && error.cause instanceof Error) {
          finish(execution, 'FAILED', { error: error.cause.name, cause: error.cause.message });
        } else {
          finish(execution, 'FAILED', { error: 'States.Runtime', cause: String(error) });
        }
      },
    );
  }

  function executionArn(machine: Machine, name: string): string {
    return `arn:aws:states:${region}:${accountId}:execution:${machine.name}:${name}`;
  }

  function start(machine: Machine, name: string, input: string): Execution {
    const arn = executionArn(machine, name);
    const startDate = Date.now();
    const execution: Execution = {
      arn,
      name,
      machine,
      input,
      status: 'RUNNING',
      startDate,
      history: [],
      redriveCount: 0,
      redriveTokens: [],
      currentToken: newToken(),
      openTokens: new Set(),
      halt: new AbortController(),
      abortRun: () => {},
      consumed: Promise.resolve(),
      historyComplete: Promise.resolve(),
    };
    executions.set(arn, execution);
    runAttempt(execution, machine.startAt, JSON.parse(input) as Json);
    return execution;
  }

  /** Runs the definition from `startAt` with `input`: the first attempt from StartAt, a redrive from its state. */
  function runAttempt(execution: Execution, startAt: string, input: Json): void {
    const { machine } = execution;
    const attempt = execution.redriveCount;
    const halt = execution.halt;
    const handlers: TaskHandlers = {};
    for (const task of machine.tasks.values()) {
      // A stopped attempt's run may still reach a Task after the next attempt began: it must not run it.
      handlers[task.name] = (value) =>
        halt.signal.aborted ? Promise.reject(haltedError()) : runTask(execution, task, value);
    }
    const context = {
      Execution: {
        Id: execution.arn,
        Name: execution.name,
        Input: JSON.parse(execution.input) as Json,
        StartTime: new Date(execution.startDate).toISOString(),
        RoleArn: machine.roleArn,
        RedriveCount: attempt,
      },
      StateMachine: { Id: machine.arn, Name: machine.name },
      // The library never generates a task token; it reads this getter whenever a path says $$.Task.Token.
      Task: {
        get Token() {
          return execution.currentToken;
        },
      },
    };
    const retryDelayMs = options.retryDelayMs;
    const run = libraryStartingAt(machine, startAt).run(input, {
      overrides: {
        taskResourceLocalHandlers: handlers,
        ...(retryDelayMs === undefined
          ? {}
          : {
              retryIntervalOverrides: Object.fromEntries(
                [...machine.tasks.keys()].map((name) => [name, retryDelayMs]),
              ),
            }),
      },
      context,
    });
    execution.abortRun = run.abort;
    execution.consumed = consume(
      execution,
      run.eventLogs as AsyncGenerator<LibraryEvent>,
      closeNestedTokens,
    ).catch(() => {});
    execution.historyComplete = execution.consumed;
    onRunSettled(execution, attempt, run.result);
  }

  function notRedrivableReason(execution: Execution, now: number): string | undefined {
    if (execution.status === 'RUNNING' || execution.status === 'SUCCEEDED') {
      return `Execution is ${execution.status} and cannot be redriven`;
    }
    if (execution.history.length >= MAX_HISTORY_EVENTS) return 'Execution history event limit exceeded';
    if (now - (execution.stopDate ?? now) > redriveWindowMs) return 'Execution redrivable period exceeded';
    return undefined;
  }

  function redrive(execution: Execution, clientToken: string | undefined): void {
    const from = execution.lastEntered ?? {
      name: execution.machine.startAt,
      input: JSON.parse(execution.input) as Json,
    };
    const redriveDate = Date.now();
    execution.redriveCount += 1;
    execution.redriveDate = redriveDate;
    execution.status = 'RUNNING';
    execution.stopDate = undefined;
    execution.output = undefined;
    execution.error = undefined;
    execution.cause = undefined;
    execution.halt = new AbortController();
    execution.currentToken = newToken();
    if (clientToken !== undefined) {
      execution.redriveTokens.push({ token: clientToken, usedAt: redriveDate, redriveDate });
      execution.redriveTokens.splice(0, execution.redriveTokens.length - REDRIVE_TOKENS_KEPT);
    }
    record(
      execution,
      'ExecutionRedriven',
      { executionRedrivenEventDetails: { redriveCount: execution.redriveCount } },
      redriveDate,
    );
    runAttempt(execution, from.name, from.input);
  }

  function stop(execution: Execution, error: string | undefined, cause: string | undefined): void {
    if (!finish(execution, 'ABORTED', { error, cause })) return;
    execution.abortRun();
  }

  return { executions, executionArn, start, notRedrivableReason, redrive, stop };
}
