import { isRecord, seconds, toJson } from './common.ts';
import type { Execution, ExecutionStatus, HistoryEvent } from './execution.ts';
import { describeResource } from './state-machines.ts';

/*
 * Execution history: the AWS-shaped events recorded from the library's event log (ids in order,
 * previousEventId the preceding event, timestamps in ms until GetExecutionHistory answers in seconds).
 */

/** The fields of the library's event log entries this endpoint reads. */
export interface LibraryEvent {
  type: string;
  timestamp: number;
  Error?: string;
  Cause?: unknown;
  index?: number;
  state?: { name: string; type: string; input: unknown; output?: unknown };
  parentState?: { name: string };
}

/** Called when a Parallel branch or Map iteration of `parentState` failed at `before`. */
type NestedFailureHandler = (execution: Execution, parentState: string, before: number) => void;

export function record(
  execution: Pick<Execution, 'history'>,
  type: string,
  details: Record<string, unknown>,
  timestamp: number,
): void {
  const id = execution.history.length + 1;
  execution.history.push({ timestamp, type, id, previousEventId: id - 1, ...details });
}

function recordLibraryEvent(
  execution: Execution,
  event: LibraryEvent,
  onNestedFailure: NestedFailureHandler,
): void {
  const state = event.state;
  const data = (value: unknown) => ({ truncated: false, value: JSON.stringify(value ?? null) });
  switch (event.type) {
    case 'ExecutionStarted':
      // A redriven attempt's run starts too; redrive() has recorded ExecutionRedriven for it.
      if (execution.redriveCount > 0) return;
      record(
        execution,
        'ExecutionStarted',
        {
          executionStartedEventDetails: {
            input: execution.input,
            inputDetails: { truncated: false },
            roleArn: execution.machine.roleArn,
          },
        },
        event.timestamp,
      );
      return;
    case 'StateEntered':
      if (!state) return;
      // State names are unique in a state machine, so a top-level name is a top-level entry; Map
      // iterations carry their index.
      if (event.index === undefined && execution.machine.topLevelStates.has(state.name)) {
        execution.lastEntered = { name: state.name, input: toJson(state.input) };
      }
      record(
        execution,
        `${state.type}StateEntered`,
        {
          stateEnteredEventDetails: {
            name: state.name,
            input: data(state.input).value,
            inputDetails: { truncated: false },
          },
        },
        event.timestamp,
      );
      return;
    case 'StateExited':
      if (!state || state.type === 'Fail') return;
      record(
        execution,
        `${state.type}StateExited`,
        {
          stateExitedEventDetails: {
            name: state.name,
            output: data(state.output).value,
            outputDetails: { truncated: false },
          },
        },
        event.timestamp,
      );
      return;
    case 'StateFailed': {
      if (!state) return;
      const error = event.Error;
      const cause = typeof event.Cause === 'string' ? event.Cause : JSON.stringify(event.Cause ?? null);
      if (state.type === 'Parallel' || state.type === 'Map') {
        record(execution, `${state.type}StateFailed`, {}, event.timestamp);
        return;
      }
      const task = state.type === 'Task' ? execution.machine.tasks.get(state.name) : undefined;
      if (!task) return;
      const timedOut = error === 'States.Timeout';
      if (task.kind === 'lambda-function') {
        const type = timedOut ? 'LambdaFunctionTimedOut' : 'LambdaFunctionFailed';
        const key = timedOut ? 'lambdaFunctionTimedOutEventDetails' : 'lambdaFunctionFailedEventDetails';
        record(execution, type, { [key]: { error, cause } }, event.timestamp);
      } else {
        const type = timedOut ? 'TaskTimedOut' : 'TaskFailed';
        const key = timedOut ? 'taskTimedOutEventDetails' : 'taskFailedEventDetails';
        record(execution, type, { [key]: { ...describeResource(task), error, cause } }, event.timestamp);
      }
      return;
    }
    case 'MapIterationStarted':
    case 'MapIterationSucceeded':
    case 'MapIterationFailed': {
      const key = `${event.type.charAt(0).toLowerCase()}${event.type.slice(1)}EventDetails`;
      record(
        execution,
        event.type,
        { [key]: { name: event.parentState?.name, index: event.index } },
        event.timestamp,
      );
      if (event.type === 'MapIterationFailed' && event.parentState) {
        onNestedFailure(execution, event.parentState.name, event.timestamp);
      }
      return;
    }
    case 'ParallelBranchFailed':
      if (event.parentState) onNestedFailure(execution, event.parentState.name, event.timestamp);
      return;
    default:
      // Terminal events are recorded by recordTerminal(); StateRetried, StateCaught and ParallelBranch*
      // have no AWS counterpart in this simplified history.
      return;
  }
}

/** Records the library's event log of one run until it is drained. */
export async function consume(
  execution: Execution,
  events: AsyncGenerator<LibraryEvent>,
  onNestedFailure: NestedFailureHandler,
): Promise<void> {
  for await (const event of events) {
    try {
      recordLibraryEvent(execution, event, onNestedFailure);
    } catch {
      // A malformed library event must not stop the history; skip it.
    }
  }
}

/** Appends the event a terminal status ends the history with. */
export function recordTerminal(
  execution: Execution,
  status: Exclude<ExecutionStatus, 'RUNNING'>,
  fields: { output?: string; error?: string; cause?: string },
  stopDate: number,
): void {
  const errorDetails = { error: fields.error, cause: fields.cause };
  const terminal: Record<Exclude<ExecutionStatus, 'RUNNING'>, [string, Record<string, unknown>]> = {
    SUCCEEDED: [
      'ExecutionSucceeded',
      { executionSucceededEventDetails: { output: fields.output, outputDetails: { truncated: false } } },
    ],
    FAILED: ['ExecutionFailed', { executionFailedEventDetails: errorDetails }],
    TIMED_OUT: ['ExecutionTimedOut', { executionTimedOutEventDetails: errorDetails }],
    ABORTED: ['ExecutionAborted', { executionAbortedEventDetails: errorDetails }],
  };
  const [type, details] = terminal[status];
  record(execution, type, details, stopDate);
}

function withoutExecutionData(event: HistoryEvent): HistoryEvent {
  const copy: HistoryEvent = { ...event };
  for (const [key, value] of Object.entries(copy)) {
    if (key.endsWith('EventDetails') && isRecord(value)) {
      const details = { ...value };
      delete details.input;
      delete details.output;
      copy[key] = details;
    }
  }
  return copy;
}

/** The events GetExecutionHistory answers, timestamps in epoch seconds; no paging. */
export function historyEvents(
  history: HistoryEvent[],
  query: { includeExecutionData: boolean; reverseOrder: boolean; maxResults: number | undefined },
): HistoryEvent[] {
  let events = [...history];
  if (!query.includeExecutionData) events = events.map(withoutExecutionData);
  if (query.reverseOrder) events.reverse();
  if (query.maxResults !== undefined) events = events.slice(0, query.maxResults);
  return events.map((event) => ({ ...event, timestamp: seconds(event.timestamp) }));
}
