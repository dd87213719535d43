import type { StateMachine } from 'aws-local-stepfunctions';

/*
 * Small helpers every module of the local Step Functions endpoint uses: the library's JSON value type,
 * the errors it treats specially, and epoch-second timestamps.
 */

export type Json = Parameters<StateMachine['run']>[0];

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function toJson(value: unknown): Json {
  return value === undefined ? null : (JSON.parse(JSON.stringify(value)) as Json);
}

/** Timestamps travel as epoch seconds, as the JSON protocol requires. */
export function seconds(ms: number): number {
  return ms / 1000;
}

export function namedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/** An error the library treats like its own `States.Runtime`: neither retried nor caught. */
export function runtimeError(message: string): Error {
  const error = new Error(message);
  error.name = 'States.Runtime';
  return Object.assign(error, { isRetryable: false, isCatchable: false });
}

export function haltedError(): Error {
  return runtimeError('The execution is no longer running');
}
