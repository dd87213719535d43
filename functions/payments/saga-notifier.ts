import { SendTaskFailureCommand, SendTaskSuccessCommand, type SFNClient } from '@aws-sdk/client-sfn';

/** Tells the waiting saga step how the payment ended. */
export interface SagaNotifier {
  /** `closed` when the step is no longer waiting (timed out, finished): an expected case, not a fault. */
  succeed(taskToken: string, output: unknown): Promise<'sent' | 'closed'>;
  fail(taskToken: string, error: string, cause: unknown): Promise<'sent' | 'closed'>;
}

const CLOSED_TOKEN_ERRORS = new Set(['TaskTimedOut', 'InvalidToken', 'TaskDoesNotExist']);

async function send(action: () => Promise<unknown>): Promise<'sent' | 'closed'> {
  try {
    await action();
    return 'sent';
  } catch (error) {
    if (error instanceof Error && CLOSED_TOKEN_ERRORS.has(error.name)) return 'closed';
    throw error;
  }
}

export function stepFunctionsNotifier(client: SFNClient): SagaNotifier {
  return {
    succeed: (taskToken, output) =>
      send(() => client.send(new SendTaskSuccessCommand({ taskToken, output: JSON.stringify(output) }))),
    fail: (taskToken, error, cause) =>
      send(() => client.send(new SendTaskFailureCommand({ taskToken, error, cause: JSON.stringify(cause) }))),
  };
}
