import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import {
  Architecture,
  LoggingFormat,
  Runtime,
  Tracing,
  type CfnFunction,
  type IVersion,
} from 'aws-cdk-lib/aws-lambda';
import { LogLevel, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { METRICS_NAMESPACE } from '../shared/metric-names.ts';
import { stageOf } from './stage.ts';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Metadata key carrying the handler's source file; the local runtime maps functions with it. */
export const ENTRY_METADATA = 'order-saga:entry';
/** Metadata key on a schedule rule: its interval in seconds (EventBridge itself only has minutes). */
export const SCHEDULE_SECONDS_METADATA = 'order-saga:interval-seconds';

/**
 * Who invokes the function, and so where a failed invocation goes: an API or function caller gets
 * the error, the state machine retries and catches it, a stream reader retries and then writes the
 * batch to its dead-letter queue, a schedule runs it again at the next tick.
 */
export type Invoker = 'api' | 'saga' | 'function' | 'stream' | 'schedule';

const NO_ASYNC_DLQ: Record<Invoker, string> = {
  api: 'Invoked synchronously by API Gateway: a failure is the HTTP answer, never an async retry',
  saga: 'Invoked synchronously by Step Functions, whose Retry and Catch handle every failure (stacks/saga-state-machine.ts)',
  function: 'Invoked synchronously (RequestResponse) by another function, which gets the error',
  stream:
    'Invoked by a DynamoDB stream mapping: failures are retried and then described on the mapping’s own on-failure queue (stacks/stream-source.ts)',
  schedule:
    'A run that fails is repeated by the next scheduled run a minute later; every run is idempotent, so a queued failure would be noise',
};

export interface ServiceFunctionProps {
  /** Handler source, relative to the project root, e.g. `functions/orders/create-order.ts`. */
  entry: string;
  service: 'orders' | 'inventory' | 'payments' | 'bridge' | 'health';
  description: string;
  invokedBy: Invoker;
  environment?: Record<string, string>;
  timeout?: Duration;
  memorySize?: number;
  /**
   * Concurrent executions kept for this function alone, and its ceiling: a flood of one function
   * (webhooks, say) cannot take the account's concurrency from the saga's tasks. Unset: shared.
   */
  reservedConcurrency?: number;
}

const READ_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:ConditionCheckItem',
];
const WRITE_ACTIONS = ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'];

/**
 * One Lambda handler: Node.js 24 on arm64, ESM bundle, its own log group, JSON logs, X-Ray tracing,
 * and a role of its own that starts with nothing but writing to that log group: every other
 * permission is granted here, per function, by the service that owns it.
 */
export class ServiceFunction extends Construct {
  readonly function: NodejsFunction;
  readonly logGroup: LogGroup;
  readonly role: Role;

  constructor(scope: Construct, id: string, props: ServiceFunctionProps) {
    super(scope, id);
    const stage = stageOf(this);
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: stage.logRetention,
      removalPolicy: stage.removalPolicy,
    });
    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `Runs ${props.entry} (${props.service})`,
    });
    // Instead of AWSLambdaBasicExecutionRole (any log group in the account): this one only.
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    this.function = new NodejsFunction(this, 'Function', {
      entry: join(PROJECT_ROOT, props.entry),
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(15),
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: LoggingFormat.JSON,
      tracing: Tracing.ACTIVE,
      // A version a deploy replaces stays: executions started before it still invoke it.
      currentVersionOptions: { removalPolicy: RemovalPolicy.RETAIN },
      ...(props.reservedConcurrency === undefined
        ? {}
        : { reservedConcurrentExecutions: props.reservedConcurrency }),
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        // The caller's variables are merged in, never dropped.
        ...props.environment,
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: props.service,
        POWERTOOLS_LOG_LEVEL: 'INFO',
        // One namespace per stack, so that two stages in one account never add up their orders.
        POWERTOOLS_METRICS_NAMESPACE: `${METRICS_NAMESPACE}/${Stack.of(this).stackName}`,
        // Responses carry client secrets and errors carry customers' data: traces keep neither.
        POWERTOOLS_TRACER_CAPTURE_RESPONSE: 'false',
        POWERTOOLS_TRACER_CAPTURE_ERROR: 'false',
      },
      bundling: {
        format: OutputFormat.ESM,
        target: 'node24',
        platform: 'node',
        mainFields: ['module', 'main'],
        minify: true,
        sourceMap: true,
        externalModules: [],
        // esbuild's per-bundle size table is noise in `npm run synth`; warnings and errors still show.
        logLevel: LogLevel.WARNING,
        // Some CommonJS dependencies call require(); give the ESM bundle one.
        banner:
          "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
      },
    });
    (this.function.node.defaultChild as CfnFunction).addMetadata(ENTRY_METADATA, props.entry);
    Validations.of(this.function).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: NO_ASYNC_DLQ[props.invokedBy],
    });
    Validations.of(this.role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: `xray:PutTraceSegments and xray:PutTelemetryRecords (active tracing) name no resource: X-Ray supports only "*" for them${
        props.invokedBy === 'stream' ? '; so does dynamodb:ListStreams, which the stream mapping needs' : ''
      } (stacks/production.test.ts allows no other action on "*")`,
    });
  }

  /**
   * The published version of this code. The state machine invokes versions, so an execution keeps
   * the code it started with across a deploy (Standard workflows keep their definition, and the
   * definition names the version); old versions are retained for the executions still using them.
   */
  get version(): IVersion {
    return this.function.currentVersion;
  }

  /**
   * Lets `caller` invoke this function synchronously, by its unqualified name (the code deployed
   * now): `lambda:InvokeFunction` on this function's ARN only, and the variable naming it. A caller
   * outside the saga has no execution to keep on one version, and a deploy that swapped the grant to
   * a new version would refuse its warm instances still naming the old one.
   */
  invokableBy(caller: ServiceFunction, variable: string): this {
    caller.role.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: [this.function.functionArn] }),
    );
    caller.function.addEnvironment(variable, this.function.functionArn);
    return this;
  }

  /**
   * Grants the item actions `access` needs on the table and on the named indexes only (no Scan, no
   * `index/*`), and sets the variable naming the table, in one call, so the two cannot drift.
   */
  bindTable(table: ITable, variable: string, access: 'read' | 'readWrite', indexes: string[] = []): this {
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: access === 'read' ? READ_ACTIONS : [...READ_ACTIONS, ...WRITE_ACTIONS],
        resources: [table.tableArn, ...indexes.map((index) => `${table.tableArn}/index/${index}`)],
      }),
    );
    this.function.addEnvironment(variable, table.tableName);
    return this;
  }

  /**
   * Reads one secret (`secretsmanager:GetSecretValue` on it alone) and sets the variable naming it;
   * with a customer-managed key, also `kms:Decrypt` through Secrets Manager only.
   */
  readSecret(secret: ISecret, variable: string, key?: IKey): this {
    secret.grantRead(this.function);
    if (key) {
      this.role.addToPrincipalPolicy(
        new PolicyStatement({
          actions: ['kms:Decrypt'],
          resources: [key.keyArn],
          conditions: {
            StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` },
          },
        }),
      );
    }
    this.function.addEnvironment(variable, secret.secretArn);
    return this;
  }
}
