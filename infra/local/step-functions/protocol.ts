import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BodyTooLargeError, readBody } from '../http-server.ts';
import { isRecord, namedError, seconds, type Json } from './common.ts';
import type { Execution } from './execution.ts';
import type { Runner } from './executions.ts';
import { historyEvents } from './history.ts';
import type { Machine } from './state-machines.ts';
import type { TaskToken, TaskTokens } from './task-tokens.ts';

/*
 * The Step Functions AWS JSON 1.0 protocol: `X-Amz-Target` routing, request validation, and the
 * service's error codes (HTTP 400, `__type` + `x-amzn-ErrorType`) that the SDK maps to its exceptions.
 */

/** A Step Functions API error: `code` is the `__type` the SDK maps to its modeled exception. */
class ApiError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** Where an execution sorts in ListExecutions; a nextToken carries the last one of its page. */
type ListPosition = Pick<Execution, 'startDate' | 'arn'>;

const REDRIVE_TOKEN_TTL_MS = 15 * 60 * 1000;
const DEFAULT_LIST_PAGE_SIZE = 100;
const MAX_PAYLOAD_BYTES = 256 * 1024;
const MAX_REQUEST_BYTES = 2 * 1024 * 1024;
const INVALID_NAME_CHARACTERS = /[\s<>{}[\]?*"#%\\^|~`$&,;:/]/u;

/** AWS execution names: 1-80 characters, no whitespace, brackets, wildcards, specials or control characters. */
function isValidExecutionName(name: string): boolean {
  if (name.length < 1 || name.length > 80 || INVALID_NAME_CHARACTERS.test(name)) return false;
  return [...name].every((char) => {
    const code = char.codePointAt(0) ?? 0;
    return code > 0x1f && (code < 0x7f || code > 0x9f);
  });
}

function send(response: ServerResponse, status: number, body: unknown, errorType?: string): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/x-amz-json-1.0',
    'Content-Length': Buffer.byteLength(text),
    'x-amzn-RequestId': randomUUID(),
  };
  if (errorType) headers['x-amzn-ErrorType'] = errorType;
  response.writeHead(status, headers);
  response.end(text);
}

function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') {
    throw new ApiError(
      'ValidationException',
      `1 validation error detected: Value at '${key}' must be a string`,
    );
  }
  return value;
}

function requiredString(body: Record<string, unknown>, key: string): string {
  const value = optionalString(body, key);
  if (value === undefined) {
    throw new ApiError(
      'ValidationException',
      `1 validation error detected: Value null at '${key}' failed to satisfy constraint: Member must not be null`,
    );
  }
  return value;
}

function maxResultsOf(body: Record<string, unknown>): number | undefined {
  const value = body.maxResults;
  if (value === undefined || value === null || value === 0) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 1000) {
    throw new ApiError(
      'ValidationException',
      "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must be between 0 and 1000",
    );
  }
  return value;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function executionListItem(execution: Execution): Record<string, unknown> {
  return {
    executionArn: execution.arn,
    stateMachineArn: execution.machine.arn,
    name: execution.name,
    status: execution.status,
    startDate: seconds(execution.startDate),
    ...(execution.stopDate === undefined ? {} : { stopDate: seconds(execution.stopDate) }),
    redriveCount: execution.redriveCount,
    ...(execution.redriveDate === undefined ? {} : { redriveDate: seconds(execution.redriveDate) }),
  };
}

/** ListExecutions order: newest first, ties by ARN, so a page token can name a position. */
function listOrder(a: ListPosition, b: ListPosition): number {
  return b.startDate - a.startDate || (a.arn < b.arn ? -1 : a.arn > b.arn ? 1 : 0);
}

function pageToken(after: ListPosition): string {
  return Buffer.from(JSON.stringify([after.startDate, after.arn])).toString('base64url');
}

/** The position a nextToken names: the sort key of the last execution of the previous page. */
function positionOf(token: string): ListPosition {
  try {
    const [startDate, arn] = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown[];
    if (typeof startDate === 'number' && typeof arn === 'string') return { startDate, arn };
  } catch {
    // Reported below, as any token this endpoint did not issue.
  }
  throw new ApiError('InvalidToken', `Invalid Token: '${token.slice(0, 200)}'`);
}

/** The endpoint's request listener: one JSON 1.0 request in, one response out. */
export function createProtocolHandler(deps: {
  machines: Map<string, Machine>;
  runner: Runner;
  tokens: TaskTokens;
  isClosing(): boolean;
}): (request: IncomingMessage, response: ServerResponse) => Promise<void> {
  const { machines, runner, tokens } = deps;
  const { executions } = runner;

  function findMachine(arn: string): Machine {
    if (!/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[^:]+(:[^:]+)?$/.test(arn)) {
      throw new ApiError('InvalidArn', `Invalid Arn: 'Resource type not valid in this context: ${arn}'`);
    }
    const machine = machines.get(arn);
    if (!machine) throw new ApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${arn}'`);
    return machine;
  }

  function findExecution(arn: string): Execution {
    if (!/^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[^:]+:[^:]+$/.test(arn)) {
      throw new ApiError('InvalidArn', `Invalid Arn: 'Resource type not valid in this context: ${arn}'`);
    }
    const execution = executions.get(arn);
    if (!execution) throw new ApiError('ExecutionDoesNotExist', `Execution Does Not Exist: '${arn}'`);
    return execution;
  }

  function lookUpToken(token: string): TaskToken {
    if (token.length < 1 || token.length > 1024) {
      throw new ApiError(
        'ValidationException',
        "1 validation error detected: Value at 'taskToken' failed to satisfy constraint: Member must have length between 1 and 1024",
      );
    }
    const entry = tokens.find(token);
    if (!entry) throw new ApiError('InvalidToken', 'Invalid Token: the task token was never issued');
    if (!entry.open)
      throw new ApiError('TaskTimedOut', 'Task Timed Out: Provided task does not exist anymore');
    return entry;
  }

  function refuseWhileClosing(): void {
    if (deps.isClosing()) {
      throw new ApiError('ServiceUnavailable', 'The local Step Functions endpoint is closing');
    }
  }

  const operations: Record<string, (body: Record<string, unknown>) => unknown> = {
    StartExecution(body) {
      const machine = findMachine(requiredString(body, 'stateMachineArn'));
      const name = optionalString(body, 'name') ?? randomUUID();
      if (!isValidExecutionName(name)) {
        throw new ApiError('InvalidName', `Invalid Name: '${name}'`);
      }
      const input = optionalString(body, 'input') ?? '{}';
      if (Buffer.byteLength(input) > MAX_PAYLOAD_BYTES) {
        throw new ApiError(
          'InvalidExecutionInput',
          'Invalid Execution Input: the input exceeds 262144 bytes',
        );
      }
      if (!isJson(input)) {
        throw new ApiError(
          'InvalidExecutionInput',
          `Invalid Execution Input: '${input.slice(0, 200)}' is not JSON`,
        );
      }
      const existing = executions.get(runner.executionArn(machine, name));
      if (existing) {
        if (existing.status === 'RUNNING' && existing.input === input) {
          return { executionArn: existing.arn, startDate: seconds(existing.startDate) };
        }
        throw new ApiError('ExecutionAlreadyExists', `Execution Already Exists: '${existing.arn}'`);
      }
      refuseWhileClosing();
      const execution = runner.start(machine, name, input);
      return { executionArn: execution.arn, startDate: seconds(execution.startDate) };
    },

    DescribeExecution(body) {
      const execution = findExecution(requiredString(body, 'executionArn'));
      const notRedrivable = runner.notRedrivableReason(execution, Date.now());
      return {
        ...executionListItem(execution),
        redriveStatus: notRedrivable === undefined ? 'REDRIVABLE' : 'NOT_REDRIVABLE',
        ...(notRedrivable === undefined ? {} : { redriveStatusReason: notRedrivable }),
        input: execution.input,
        inputDetails: { included: true },
        ...(execution.output === undefined
          ? {}
          : { output: execution.output, outputDetails: { included: true } }),
        ...(execution.error === undefined ? {} : { error: execution.error }),
        ...(execution.cause === undefined ? {} : { cause: execution.cause }),
      };
    },

    StopExecution(body) {
      const execution = findExecution(requiredString(body, 'executionArn'));
      runner.stop(execution, optionalString(body, 'error'), optionalString(body, 'cause'));
      return { stopDate: seconds(execution.stopDate ?? Date.now()) };
    },

    async RedriveExecution(body) {
      const execution = findExecution(requiredString(body, 'executionArn'));
      const clientToken = optionalString(body, 'clientToken');
      if (clientToken !== undefined && !/^[!-~]{1,64}$/.test(clientToken)) {
        throw new ApiError(
          'ValidationException',
          "1 validation error detected: Value at 'clientToken' failed to satisfy constraint: Member must have length between 1 and 64",
        );
      }
      // Where it stopped is known once its history is complete.
      if (execution.status !== 'RUNNING') await execution.historyComplete;
      const now = Date.now();
      const repeated = execution.redriveTokens.find(
        (entry) => entry.token === clientToken && now - entry.usedAt <= REDRIVE_TOKEN_TTL_MS,
      );
      if (repeated) return { redriveDate: seconds(repeated.redriveDate) };
      const reason = runner.notRedrivableReason(execution, now);
      if (reason !== undefined) {
        throw new ApiError(
          'ExecutionNotRedrivable',
          `Execution Not Redrivable: '${execution.arn}': ${reason}`,
        );
      }
      refuseWhileClosing();
      runner.redrive(execution, clientToken);
      return { redriveDate: seconds(execution.redriveDate ?? now) };
    },

    SendTaskSuccess(body) {
      const entry = lookUpToken(requiredString(body, 'taskToken'));
      const output = requiredString(body, 'output');
      if (Buffer.byteLength(output) > MAX_PAYLOAD_BYTES || !isJson(output)) {
        throw new ApiError('InvalidOutput', `Invalid Output: '${output.slice(0, 200)}' is not JSON`);
      }
      tokens.settle(entry, { value: JSON.parse(output) as Json });
      return {};
    },

    SendTaskFailure(body) {
      const entry = lookUpToken(requiredString(body, 'taskToken'));
      const error = optionalString(body, 'error') ?? '';
      const cause = optionalString(body, 'cause') ?? '';
      tokens.settle(entry, { error: namedError(error, cause) });
      return {};
    },

    SendTaskHeartbeat(body) {
      lookUpToken(requiredString(body, 'taskToken'));
      return {};
    },

    async GetExecutionHistory(body) {
      const execution = findExecution(requiredString(body, 'executionArn'));
      const maxResults = maxResultsOf(body);
      if (execution.status !== 'RUNNING') await execution.historyComplete;
      return {
        events: historyEvents(execution.history, {
          includeExecutionData: body.includeExecutionData !== false,
          reverseOrder: body.reverseOrder === true,
          maxResults,
        }),
      };
    },

    ListExecutions(body) {
      const machine = findMachine(requiredString(body, 'stateMachineArn'));
      const statusFilter = optionalString(body, 'statusFilter');
      const redriveFilter = optionalString(body, 'redriveFilter');
      if (redriveFilter !== undefined && redriveFilter !== 'REDRIVEN' && redriveFilter !== 'NOT_REDRIVEN') {
        throw new ApiError(
          'ValidationException',
          `1 validation error detected: Value '${redriveFilter}' at 'redriveFilter' failed to satisfy constraint: Member must satisfy enum value set: [REDRIVEN, NOT_REDRIVEN]`,
        );
      }
      const pageSize = maxResultsOf(body) ?? DEFAULT_LIST_PAGE_SIZE;
      const nextToken = optionalString(body, 'nextToken');
      const after = nextToken === undefined ? undefined : positionOf(nextToken);
      const matching = [...executions.values()]
        .filter((execution) => execution.machine === machine)
        .filter((execution) => statusFilter === undefined || execution.status === statusFilter)
        .filter((execution) => {
          if (redriveFilter === undefined) return true;
          return redriveFilter === 'REDRIVEN' ? execution.redriveCount > 0 : execution.redriveCount === 0;
        })
        .filter((execution) => after === undefined || listOrder(after, execution) < 0)
        .sort(listOrder);
      const page = matching.slice(0, pageSize);
      const last = page.at(-1);
      return {
        executions: page.map(executionListItem),
        ...(matching.length > pageSize && last ? { nextToken: pageToken(last) } : {}),
      };
    },

    DescribeStateMachine(body) {
      const machine = findMachine(requiredString(body, 'stateMachineArn'));
      return {
        stateMachineArn: machine.arn,
        name: machine.name,
        status: 'ACTIVE',
        definition: machine.definition,
        roleArn: machine.roleArn,
        type: 'STANDARD',
        creationDate: seconds(machine.creationDate),
        loggingConfiguration: { level: 'OFF', includeExecutionData: false },
        tracingConfiguration: { enabled: false },
      };
    },

    ListStateMachines(body) {
      const maxResults = maxResultsOf(body);
      let items = [...machines.values()];
      if (maxResults !== undefined) items = items.slice(0, maxResults);
      return {
        stateMachines: items.map((machine) => ({
          stateMachineArn: machine.arn,
          name: machine.name,
          type: 'STANDARD',
          creationDate: seconds(machine.creationDate),
        })),
      };
    },
  };

  async function requestText(request: IncomingMessage): Promise<string> {
    try {
      return (await readBody(request, MAX_REQUEST_BYTES)).toString('utf8');
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        throw new ApiError('ValidationException', 'Request body too large');
      }
      throw error;
    }
  }

  return async function handle(request, response) {
    try {
      const target = request.headers['x-amz-target'];
      const operation =
        typeof target === 'string' && target.startsWith('AWSStepFunctions.')
          ? operations[target.slice('AWSStepFunctions.'.length)]
          : undefined;
      const text = await requestText(request);
      if (request.method !== 'POST' || !operation) {
        throw new ApiError('UnknownOperationException', `Unknown operation: ${String(target)}`);
      }
      let body: unknown;
      try {
        body = text === '' ? {} : JSON.parse(text);
      } catch {
        throw new ApiError('SerializationException', 'The request body is not valid JSON');
      }
      if (!isRecord(body))
        throw new ApiError('SerializationException', 'The request body must be a JSON object');
      send(response, 200, await operation(body));
    } catch (error) {
      if (error instanceof ApiError) {
        send(response, 400, { __type: error.code, message: error.message }, error.code);
      } else {
        const message = error instanceof Error ? error.message : String(error);
        send(response, 500, { __type: 'InternalFailure', message }, 'InternalFailure');
      }
    }
  };
}
