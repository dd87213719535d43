import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';
import { tracer } from './tracer.ts';

/*
 * AWS SDK clients, built once per execution environment and never with a hard-coded endpoint:
 * the local runtime and LocalStack point them elsewhere with AWS_ENDPOINT_URL_<SERVICE>. Each is
 * captured by the Tracer (a subsegment per call on AWS; unchanged where tracing is off).
 */
let documentClient: DynamoDBDocumentClient | undefined;
let sfnClient: SFNClient | undefined;
let lambda: LambdaClient | undefined;

export function dynamoDocumentClient(): DynamoDBDocumentClient {
  documentClient ??= DynamoDBDocumentClient.from(tracer.captureAWSv3Client(new DynamoDBClient({})), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
  return documentClient;
}

export function stepFunctionsClient(): SFNClient {
  sfnClient ??= tracer.captureAWSv3Client(new SFNClient({}));
  return sfnClient;
}

export function lambdaClient(): LambdaClient {
  lambda ??= tracer.captureAWSv3Client(new LambdaClient({}));
  return lambda;
}

/**
 * Invokes a function synchronously (RequestResponse) and answers its parsed result. A failed call,
 * or the function failing (`FunctionError`, its error payload quoted), is thrown as `unavailable`
 * makes it: the caller names the fault its own callers retry on.
 */
export async function invokeFunction(
  client: LambdaClient,
  functionName: string,
  payload: unknown,
  unavailable: (message: string, options?: ErrorOptions) => Error,
): Promise<unknown> {
  const response = await client
    .send(new InvokeCommand({ FunctionName: functionName, Payload: JSON.stringify(payload) }))
    .catch((error: unknown) => {
      throw unavailable(`Invoking ${functionName} failed`, { cause: error });
    });
  const text = response.Payload ? Buffer.from(response.Payload).toString('utf8') : 'null';
  if (response.FunctionError) throw unavailable(`${functionName} failed: ${text.slice(0, 500)}`);
  return JSON.parse(text) as unknown;
}
