import type { Json } from './common.ts';
import type { Machine } from './state-machines.ts';
import type { TaskToken } from './task-tokens.ts';

/*
 * An execution as the endpoint keeps it, and its history's events: the shape the runner
 * (executions.ts), the history (history.ts) and the protocol (protocol.ts) share.
 */

export interface HistoryEvent {
  id: number;
  previousEventId: number;
  timestamp: number;
  type: string;
  [details: string]: unknown;
}

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export interface Execution {
  arn: string;
  name: string;
  machine: Machine;
  input: string;
  status: ExecutionStatus;
  startDate: number;
  stopDate?: number;
  output?: string;
  error?: string;
  cause?: string;
  history: HistoryEvent[];
  /** Also the attempt number: the run of attempt N settles only attempt N. */
  redriveCount: number;
  redriveDate?: number;
  /** The top-level state entered last, with its input: where a redrive restarts. */
  lastEntered?: { name: string; input: Json };
  /** Client tokens of successful redrives, newest last (at most REDRIVE_TOKENS_KEPT). */
  redriveTokens: Array<{ token: string; usedAt: number; redriveDate: number }>;
  /** The token `$$.Task.Token` currently reads as; rotated whenever a waitForTaskToken task takes it. */
  currentToken: string;
  openTokens: Set<TaskToken>;
  /** Aborted when the execution ends: pending Task overrides reject at once, so library timers clear. */
  halt: AbortController;
  abortRun: () => void;
  /** Resolves when the library's event log is drained. */
  consumed: Promise<void>;
  /** Resolves when the history is final (terminal event appended). */
  historyComplete: Promise<void>;
}
