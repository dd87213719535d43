import middy, { type MiddlewareObj } from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { ParseError } from '@aws-lambda-powertools/parser';
import { parser } from '@aws-lambda-powertools/parser/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { Context } from 'aws-lambda';
import type { z } from 'zod';
import { logger, orderLogKeys } from './logger.ts';
import { metrics } from './metrics.ts';
import { tracer } from './tracer.ts';

/*
 * The one Lambda edge: what every handler runs before and after its own code. Outermost first:
 * the Tracer's segment (responses are not recorded: some hold a client secret or personal data),
 * the logger's Lambda context, the metrics flush, and the order the invocation is about on every
 * log line. Task handlers add the parser with their command's schema, so `run` receives the command
 * parsed and typed.
 */

/**
 * A task's event does not parse as its command. Its name is neither an outcome nor a fault
 * (shared/saga.ts), so the state machine does not retry it: before money it compensates with
 * PROCESSING_ERROR, after it the execution fails for an operator. The message names each field.
 */
export class InvalidCommandError extends Error {
  constructor(issues: readonly { message: string; path?: readonly unknown[] }[], options?: ErrorOptions) {
    const fields = issues.map(({ path, message }) => {
      const at = (path ?? []).map((key) =>
        String(typeof key === 'object' && key ? (key as { key: unknown }).key : key),
      );
      return at.length > 0 ? `${at.join('.')}: ${message}` : message;
    });
    super(`The command is invalid: ${fields.join('; ')}`, options);
    this.name = 'InvalidCommandError';
  }
}

/** Turns the parser's own failure (a ParseError whose cause holds the issues) into InvalidCommandError. */
function invalidCommands(): MiddlewareObj {
  return {
    onError: (request) => {
      const { error } = request;
      if (!(error instanceof ParseError) || !Array.isArray(error.cause)) return;
      request.error = new InvalidCommandError(error.cause as { message: string }[], { cause: error });
    },
  };
}

/**
 * The middlewares every handler shares. `logFailures`: a failed invocation logs one line with its
 * function, order and error (the tasks and stream readers; the HTTP edge logs its own 500s).
 */
export function observability(options: { logFailures: boolean }): MiddlewareObj[] {
  return [
    captureLambdaHandler(tracer, { captureResponse: false }),
    injectLambdaContext(logger),
    logMetrics(metrics),
    orderLogKeys(options),
  ] as MiddlewareObj[];
}

/**
 * A handler invoked with a command (a saga task, the orders service calling payments): `run`
 * receives the event parsed with `schema`; an event that does not parse fails with
 * InvalidCommandError before `run`.
 */
export function taskHandler<S extends z.ZodType, R>(
  schema: S,
  run: (command: z.output<S>, context: Context) => Promise<R>,
) {
  return middy<unknown, R>()
    .use(observability({ logFailures: true }))
    .use(invalidCommands())
    .use(parser({ schema }))
    .handler((command, context) => run(command as z.output<S>, context));
}

/** A handler of events it takes as they come (a table's stream, a schedule): the edge without a parser. */
export function eventHandler<E, R>(run: (event: E, context: Context) => Promise<R>) {
  return middy<E, R>()
    .use(observability({ logFailures: true }))
    .handler((event, context) => run(event, context));
}
