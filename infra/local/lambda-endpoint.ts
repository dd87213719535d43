import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { listen, readBody } from './http-server.ts';

/*
 * A local stand-in for the Lambda Invoke API, so that a handler calling another function with the
 * unchanged `@aws-sdk/client-lambda` (pointed here by AWS_ENDPOINT_URL_LAMBDA) reaches the in-process
 * handler, as the orders service does when a customer cancels during the payment wait.
 *
 * Mirrors: `POST /2015-03-31/functions/{FunctionName}/invocations` with InvocationType
 * RequestResponse; the function's result as the body; a function error as 200 with
 * `X-Amz-Function-Error: Unhandled` and `{errorType, errorMessage, trace}`; an unknown function as
 * 404 ResourceNotFoundException; `X-Amz-Executed-Version: $LATEST`.
 * Not mirrored: Event and DryRun invocation types, qualifiers, log tails, payload limits, throttling
 * (LOCAL_FAULTS applies to saga task invocations only), IAM.
 */

export interface LambdaEndpoint {
  readonly url: string;
  close(): Promise<void>;
}

const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/;

function send(response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'x-amzn-RequestId': randomUUID(),
    ...headers,
  });
  response.end(body);
}

/** `invoke` runs a function by name; it throws an Error named ResourceNotFoundException for an unknown one. */
export async function startLambdaEndpoint(
  invoke: (functionName: string, payload: unknown) => Promise<unknown>,
): Promise<LambdaEndpoint> {
  const server = await listen((request, response) => {
    void (async () => {
      const match = INVOKE_PATH.exec(new URL(request.url ?? '/', 'http://127.0.0.1').pathname);
      const text = (await readBody(request)).toString('utf8');
      if (request.method !== 'POST' || !match) {
        send(response, 404, JSON.stringify({ message: 'Unknown operation' }), {
          'x-amzn-ErrorType': 'UnknownOperationException',
        });
        return;
      }
      const type = request.headers['x-amz-invocation-type'] ?? 'RequestResponse';
      if (type !== 'RequestResponse') {
        send(
          response,
          400,
          JSON.stringify({ message: `InvocationType ${String(type)} is not supported locally` }),
          {
            'x-amzn-ErrorType': 'InvalidParameterValueException',
          },
        );
        return;
      }
      let payload: unknown;
      try {
        payload = text === '' ? {} : JSON.parse(text);
      } catch {
        send(response, 400, JSON.stringify({ message: 'Could not parse request body into json' }), {
          'x-amzn-ErrorType': 'InvalidRequestContentException',
        });
        return;
      }
      try {
        const result = await invoke(decodeURIComponent(match[1]!), payload);
        send(response, 200, JSON.stringify(result ?? null), { 'X-Amz-Executed-Version': '$LATEST' });
      } catch (error) {
        const name = error instanceof Error ? error.name : 'Error';
        if (name === 'ResourceNotFoundException') {
          send(response, 404, JSON.stringify({ Type: 'User', message: (error as Error).message }), {
            'x-amzn-ErrorType': 'ResourceNotFoundException',
          });
          return;
        }
        const body = {
          errorType: name,
          errorMessage: error instanceof Error ? error.message : String(error),
          trace: error instanceof Error && error.stack ? error.stack.split('\n') : [],
        };
        send(response, 200, JSON.stringify(body), {
          'X-Amz-Function-Error': 'Unhandled',
          'X-Amz-Executed-Version': '$LATEST',
        });
      }
    })().catch((error: unknown) => {
      if (!response.headersSent) send(response, 500, JSON.stringify({ message: String(error) }));
    });
  });
  return { url: server.url, close: server.close };
}
