import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { SFNClient } from '@aws-sdk/client-sfn';

/*
 * AWS SDK clients, built once per execution environment and never with a hard-coded endpoint:
 * the local runtime and LocalStack point them elsewhere with AWS_ENDPOINT_URL_<SERVICE>.
 */
let documentClient: DynamoDBDocumentClient | undefined;
let sfnClient: SFNClient | undefined;
let lambda: LambdaClient | undefined;

export function dynamoDocumentClient(): DynamoDBDocumentClient {
  documentClient ??= DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true, convertClassInstanceToMap: false },
  });
  return documentClient;
}

export function stepFunctionsClient(): SFNClient {
  sfnClient ??= new SFNClient({});
  return sfnClient;
}

export function lambdaClient(): LambdaClient {
  lambda ??= new LambdaClient({});
  return lambda;
}
