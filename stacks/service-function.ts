import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Architecture, LoggingFormat, Runtime, type CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { LogLevel, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Metadata key carrying the handler's source file; the local runtime maps functions with it. */
export const ENTRY_METADATA = 'order-saga:entry';
/** Metadata key on a schedule rule: its interval in seconds (EventBridge itself only has minutes). */
export const SCHEDULE_SECONDS_METADATA = 'order-saga:interval-seconds';

export interface ServiceFunctionProps {
  /** Handler source, relative to the project root, e.g. `functions/orders/create-order.ts`. */
  entry: string;
  service: 'orders' | 'inventory' | 'payments' | 'bridge' | 'health';
  description: string;
  environment?: Record<string, string>;
  timeout?: Duration;
  memorySize?: number;
}

/** One Lambda handler: Node.js 24 on arm64, ESM bundle, its own log group, JSON logs. */
export class ServiceFunction extends Construct {
  readonly function: NodejsFunction;
  readonly logGroup: LogGroup;

  constructor(scope: Construct, id: string, props: ServiceFunctionProps) {
    super(scope, id);
    const logGroup = new LogGroup(this, 'Logs', {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.logGroup = logGroup;
    this.function = new NodejsFunction(this, 'Function', {
      entry: join(PROJECT_ROOT, props.entry),
      handler: 'handler',
      description: props.description,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: props.memorySize ?? 512,
      timeout: props.timeout ?? Duration.seconds(15),
      logGroup,
      loggingFormat: LoggingFormat.JSON,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      environment: {
        // The caller's variables are merged in, never dropped.
        ...props.environment,
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: props.service,
        POWERTOOLS_LOG_LEVEL: 'INFO',
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
  }

  /** Grants table access and sets the variable naming it, in one call, so the two cannot drift. */
  bindTable(table: ITable, variable: string, access: 'read' | 'readWrite'): this {
    if (access === 'read') table.grantReadData(this.function);
    else table.grantReadWriteData(this.function);
    this.function.addEnvironment(variable, table.tableName);
    return this;
  }
}
