import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { streamDefinitions } from '../nats/streams.ts';
import { natsAccessFromEnv } from '../../shared/nats-access.ts';
import { ensureStreams, type EnsureStreamsResult } from '../../shared/nats.ts';
import { LOCAL_STRIPE_API_KEY, type LocalConfig } from './config.ts';
import { DEMO_CATALOGUE } from './demo-catalogue.ts';
import { faultInjector, randomFaultSeed, type FaultInjector } from './faults.ts';
import { LOCAL_JWT_AUDIENCE, LOCAL_JWT_ISSUER, localJwtAuthorizer } from './auth.ts';
import { apiDocsRoutes } from './api-docs.ts';
import { startHttpGateway } from './http-gateway.ts';
import { startLambdaEndpoint } from './lambda-endpoint.ts';
import { startLambdaHost, type LambdaHost } from './lambda-host.ts';
import { metricsRoute, prometheusRegistry } from './prometheus.ts';
import { resolveNats, startDynamoDbLocal, type LocalService } from './processes.ts';
import { startStepFunctionsEndpoint } from './step-functions/index.ts';
import { startStreamPoller, type StreamPoller } from './stream-poller.ts';
import { startStripeEmulator } from './stripe-emulator/index.ts';
import { createTables, tableName, templateTables } from './tables.ts';
import {
  readTopology,
  synthesizeTemplate,
  type Bindings,
  type FunctionSpec,
  type Template,
} from './template.ts';

const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const REGION = 'us-east-1';
const ACCOUNT = '000000000000';

export interface LocalRuntimeOptions {
  config: LocalConfig;
  /** Use this DynamoDB (e.g. a test's DynamoDB Local) instead of starting one. */
  dynamodbEndpoint?: string;
  /**
   * Prefix of the table names. Default: none on a DynamoDB Local of its own, a random one on a given
   * `dynamodbEndpoint`, so that runtimes sharing one DynamoDB never share tables (or their streams).
   */
  tablePrefix?: string;
  /** Stripe emulator webhook retry pacing (tests make it quick). */
  webhookRetry?: { maxAttempts: number; baseDelayMs: number };
  /**
   * The faults to inject, instead of those `config.LOCAL_FAULTS` names (tests pass their own, with a
   * `filter` to scope them, and change them with `set` while running).
   */
  faults?: FaultInjector;
  /** Tests only: every saga Retry waits this long instead of its backoff (attempt counts unchanged). */
  retryDelayMs?: number;
  /** Tests only: a stream reader's failed batch is retried after this long, every time. */
  streamRetryDelayMs?: number;
  log?: (line: string) => void;
}

export interface LocalRuntime {
  readonly apiUrl: string;
  readonly natsUrl: string;
  /**
   * `true`: a server this runtime did not start (`NATS_URL`, or one already on 127.0.0.1:4222),
   * shared with whatever else uses it and left running on stop. `false`: its own `nats-server`.
   */
  readonly natsShared: boolean;
  /** What start-up did to the JetStream streams (ORDERS, INVENTORY, PAYMENTS). */
  readonly natsStreams: EnsureStreamsResult;
  readonly dynamodbEndpoint: string;
  readonly stripeUrl: string;
  readonly stepFunctionsUrl: string;
  readonly lambdas: LambdaHost;
  /** The fault injector in force: saga task invocations, the Stripe emulator and its webhooks. */
  readonly faults: FaultInjector;
  readonly tableNames: { orders: string; inventory: string; payments: string };
  /** Resolves when every outbox record written so far has been handed to the bridge. */
  drained(): Promise<void>;
  stop(): Promise<void>;
}

function bindingsFor(
  template: Template,
  values: {
    natsUrl: string;
    stateMachineArn: (id: string) => string;
    streamArns: Map<string, string>;
    tablePrefix: string;
  },
): Bindings {
  const typeOf = (id: string) => template.Resources[id]?.Type;
  return {
    ref(id) {
      switch (id) {
        case 'AWS::Region':
          return REGION;
        case 'AWS::AccountId':
          return ACCOUNT;
        case 'AWS::Partition':
          return 'aws';
        case 'AWS::URLSuffix':
          return 'amazonaws.com';
        case 'NatsUrl':
          return values.natsUrl;
        case 'StripeApiKeySecretArn':
          return `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:local-stripe-api-key`;
        case 'StripeWebhookSecretArn':
          return `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:local-stripe-webhook`;
      }
      if (typeOf(id) === 'AWS::StepFunctions::StateMachine') return values.stateMachineArn(id);
      // A published version: locally every version runs the checkout's code.
      if (typeOf(id) === 'AWS::Lambda::Version') {
        const functionRef = template.Resources[id]!.Properties?.FunctionName as { Ref?: string } | undefined;
        if (!functionRef?.Ref) throw new Error(`version ${id} names no function of the stack`);
        return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${functionRef.Ref}:$LATEST`;
      }
      if (typeOf(id) === 'AWS::DynamoDB::Table') return tableName(id, values.tablePrefix);
      if (template.Resources[id] || template.Parameters?.[id]) return id;
      throw new Error(`unknown reference ${id}`);
    },
    getAtt(id, attribute) {
      const type = typeOf(id);
      if (type === 'AWS::Lambda::Function' && attribute === 'Arn')
        return `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${id}`;
      if (type === 'AWS::DynamoDB::Table' && attribute === 'Arn')
        return `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${tableName(id, values.tablePrefix)}`;
      if (type === 'AWS::DynamoDB::Table' && attribute === 'StreamArn') {
        const arn = values.streamArns.get(id);
        if (!arn) throw new Error(`table ${id} has no stream`);
        return arn;
      }
      if (type === 'AWS::StepFunctions::StateMachine' && attribute === 'Name') return id;
      throw new Error(`the local runtime cannot resolve ${id}.${attribute}`);
    },
  };
}

/**
 * Hands each function the Stripe secret its stack grants it, and no other, as the value itself:
 * the functions reading the API key's secret get STRIPE_SECRET_KEY, the webhook (the one reading
 * the signing secret's) STRIPE_WEBHOOK_SECRET. Secrets Manager is not emulated.
 */
function withLocalSecrets(
  functions: FunctionSpec[],
  secrets: { apiKey: string; webhookSecret: string },
): FunctionSpec[] {
  return functions.map((spec) => ({
    ...spec,
    environment: {
      ...spec.environment,
      ...(spec.environment.STRIPE_API_KEY_SECRET_ARN ? { STRIPE_SECRET_KEY: secrets.apiKey } : {}),
      ...(spec.environment.STRIPE_WEBHOOK_SECRET_ARN ? { STRIPE_WEBHOOK_SECRET: secrets.webhookSecret } : {}),
    },
  }));
}

/**
 * Starts the whole system on this machine: DynamoDB Local, NATS, the Stripe emulator, the saga's
 * ASL on a local Step Functions endpoint, the handlers behind an HTTP API, the stream pollers
 * feeding the bridge, and the sweeper's timer. Every piece comes from the synthesized stack.
 */
export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const { config } = options;
  const log = options.log ?? ((line: string) => console.log(line));
  const faults =
    options.faults ??
    faultInjector({
      spec: config.LOCAL_FAULTS,
      seed: config.LOCAL_FAULTS_SEED ?? randomFaultSeed(),
      log,
    });
  log(`faults in force: ${faults.describe()}`);
  const stops: Array<() => Promise<void>> = [];
  const stopAll = async () => {
    for (const stop of stops.reverse())
      await stop().catch((error: unknown) => log(`stop failed: ${String(error)}`));
  };

  try {
    const tablePrefix =
      options.tablePrefix ?? (options.dynamodbEndpoint ? `rt${randomBytes(3).toString('hex')}-` : '');
    const synthEnv = {
      ...process.env,
      PAYMENT_TIMEOUT_SECONDS: String(config.PAYMENT_TIMEOUT_SECONDS),
      RESERVATION_TTL_SECONDS: String(config.RESERVATION_TTL_SECONDS),
      RESERVATION_SWEEP_INTERVAL_SECONDS: String(config.RESERVATION_SWEEP_INTERVAL_SECONDS),
    };
    const [template, dynamodb, nats] = await Promise.all([
      // LOCAL_AUTH=jwt: the stack as deployed with a JWT issuer, whose authorizer the gateway enforces.
      synthesizeTemplate(
        synthEnv,
        config.LOCAL_AUTH === 'jwt' ? { jwtIssuer: LOCAL_JWT_ISSUER, jwtAudience: LOCAL_JWT_AUDIENCE } : {},
      ),
      options.dynamodbEndpoint
        ? Promise.resolve<LocalService>({ url: options.dynamodbEndpoint, stop: async () => {} })
        : startDynamoDbLocal(),
      resolveNats(config.NATS_URL),
    ]);
    stops.push(
      () => dynamodb.stop(),
      () => nats.stop(),
    );

    // The SDK reads these lazily (credentials on first call), so the runtime's own process has them too.
    const awsEnvironment = {
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      AWS_ENDPOINT_URL_DYNAMODB: dynamodb.url,
    };
    Object.assign(process.env, awsEnvironment);

    const dynamoClient = new DynamoDBClient({
      region: REGION,
      endpoint: dynamodb.url,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    // The runtime and the bridge connect as one user, with the same CA (docs/nats.md).
    const natsAuth = {
      ...(config.NATS_CREDS ? { NATS_CREDS: config.NATS_CREDS } : {}),
      ...(config.NATS_TLS_CA ? { NATS_TLS_CA: config.NATS_TLS_CA } : {}),
      ...(config.NATS_USER ? { NATS_USER: config.NATS_USER } : {}),
      ...(config.NATS_PASSWORD ? { NATS_PASSWORD: config.NATS_PASSWORD } : {}),
    };
    const natsAccess = natsAccessFromEnv({ NATS_URL: nats.url, ...natsAuth });
    // A shared server's streams that differ are never changed silently (NATS_UPDATE_STREAMS).
    const [streamArns, natsStreams] = await Promise.all([
      createTables(dynamoClient, templateTables(template), tablePrefix),
      ensureStreams(natsAccess, streamDefinitions(1), { update: config.NATS_UPDATE_STREAMS }),
    ]);

    // The endpoint needs the handlers and the handlers need the endpoint's URL: bind late.
    const loaded: { lambdas?: LambdaHost } = {};
    const stateMachineName = (id: string) => id;
    const stateMachineArn = (id: string) =>
      `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${stateMachineName(id)}`;
    const topology = readTopology(
      template,
      bindingsFor(template, { natsUrl: nats.url, stateMachineArn, streamArns, tablePrefix }),
    );

    const stepFunctions = await startStepFunctionsEndpoint({
      stateMachines: [
        {
          name: stateMachineName(topology.stateMachine.logicalId),
          definition: topology.stateMachine.definition,
        },
      ],
      // Saga tasks only: the Lambda faults are injected here, not on the HTTP API or the stream pollers.
      // A failed task prints its one line from the Lambda host, as Lambda's own log would show it.
      invoke: async (arn, payload, task) => {
        if (!loaded.lambdas) throw new Error('handlers are not loaded yet');
        return loaded.lambdas.invokeTask(arn, payload, task);
      },
      region: REGION,
      accountId: ACCOUNT,
      ...(options.retryDelayMs === undefined ? {} : { retryDelayMs: options.retryDelayMs }),
    });
    stops.push(() => stepFunctions.close());

    const stripe = await startStripeEmulator({
      webhookSecret: config.STRIPE_WEBHOOK_SECRET,
      faults,
      ...(options.webhookRetry ? { webhookRetry: options.webhookRetry } : {}),
    });
    stops.push(() => stripe.close());

    const lambdaApi = await startLambdaEndpoint((name, payload) => {
      if (!loaded.lambdas) throw new Error('handlers are not loaded yet');
      return loaded.lambdas.invoke(name, payload);
    });
    stops.push(() => lambdaApi.close());

    // GET /metrics: the EMF every invocation flushes, as Prometheus series (prometheus.ts).
    const metrics = prometheusRegistry();
    const host = await startLambdaHost({
      projectRoot: PROJECT_ROOT,
      functions: withLocalSecrets(topology.functions, {
        apiKey: LOCAL_STRIPE_API_KEY,
        webhookSecret: config.STRIPE_WEBHOOK_SECRET,
      }),
      region: REGION,
      accountId: ACCOUNT,
      faults,
      log,
      onMetrics: (emf) => metrics.record(emf),
      baseEnvironment: {
        ...awsEnvironment,
        AWS_ENDPOINT_URL_SFN: stepFunctions.url,
        AWS_ENDPOINT_URL_LAMBDA: lambdaApi.url,
        STRIPE_API_URL: stripe.url,
        POWERTOOLS_LOG_LEVEL: config.LOG_LEVEL,
        // No X-Ray daemon here: the Tracer stays a pass-through (shared/tracer.ts).
        POWERTOOLS_TRACE_ENABLED: 'false',
        ...natsAuth,
      },
    });
    loaded.lambdas = host;

    const streamsClient = new DynamoDBStreamsClient({
      region: REGION,
      endpoint: dynamodb.url,
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    stops.push(async () => streamsClient.destroy());
    const pollers: StreamPoller[] = topology.eventSources.map((source) => {
      const streamArn = streamArns.get(source.tableId);
      if (!streamArn) throw new Error(`event source on ${source.tableId}, which has no stream`);
      const poller = startStreamPoller({
        client: streamsClient,
        streamArn,
        region: REGION,
        batchSize: source.batchSize,
        maximumBatchingWindowMs: source.maximumBatchingWindowSeconds * 1000,
        startingPosition: source.startingPosition,
        filterCriteria: { Filters: source.filters },
        reportBatchItemFailures: source.reportBatchItemFailures,
        maximumRetryAttempts: source.maximumRetryAttempts,
        ...(options.streamRetryDelayMs === undefined
          ? {}
          : { retryDelayMs: options.streamRetryDelayMs, maxRetryDelayMs: options.streamRetryDelayMs }),
        invoke: (event) => host.invoke(source.functionId, event),
        // A failed invocation has printed its line (lambda-host.ts); this is the rest: reported batch
        // item failures, and the Streams API's own.
        onError: (error, attempt) => {
          if (!host.reported(error))
            log(
              `stream ${source.tableId} → ${source.functionId}: attempt ${attempt} failed: ${String(error)}`,
            );
        },
        onDiscard: (records) =>
          log(`stream ${source.tableId}: gave up on ${records.length} record(s) after retries`),
      });
      stops.push(() => poller.stop());
      return poller;
    });

    for (const schedule of topology.schedules) {
      let running = false;
      const timer = setInterval(() => {
        if (running) return;
        running = true;
        host
          .invoke(schedule.functionId, {
            source: 'aws.events',
            'detail-type': 'Scheduled Event',
            time: new Date().toISOString(),
          })
          .catch((error: unknown) => {
            if (!host.reported(error)) log(`scheduled ${schedule.functionId} failed: ${String(error)}`);
          })
          .finally(() => (running = false));
      }, schedule.intervalSeconds * 1000);
      stops.push(async () => clearInterval(timer));
    }

    const jwt = topology.jwtAuthorizer;
    if (config.LOCAL_AUTH === 'jwt' && !jwt)
      throw new Error('LOCAL_AUTH=jwt, but the stack has no JWT authorizer');
    const gateway = await startHttpGateway({
      routes: topology.routes,
      lambdas: host,
      port: config.PORT,
      staticRoutes: [...apiDocsRoutes(), metricsRoute(metrics)],
      ...(config.LOCAL_AUTH === 'jwt' && jwt
        ? { jwtAuthorizer: localJwtAuthorizer({ secret: config.LOCAL_JWT_SECRET, ...jwt }) }
        : {}),
      onError: (error) => {
        if (!host.reported(error)) log(`HTTP gateway: ${String(error)}`);
      },
    });
    stops.push(() => gateway.close());
    stripe.setWebhookUrl(`${gateway.url}/payments/webhook`);

    const tableOf = (variable: string) => {
      const name = topology.functions.find((fn) => fn.environment[variable])?.environment[variable];
      if (!name) throw new Error(`no function names ${variable}`);
      return name;
    };
    const tableNames = {
      orders: tableOf('ORDERS_TABLE_NAME'),
      inventory: tableOf('INVENTORY_TABLE_NAME'),
      payments: tableOf('PAYMENTS_TABLE_NAME'),
    };

    if (config.SEED_DEMO_DATA) {
      const { Count } = await dynamoClient.send(
        new ScanCommand({ TableName: tableNames.inventory, Limit: 1, Select: 'COUNT' }),
      );
      if (!Count) {
        for (const product of DEMO_CATALOGUE) {
          const { sku, ...body } = product;
          const response = await fetch(`${gateway.url}/products/${sku}`, {
            method: 'PUT',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(body),
          });
          if (!response.ok)
            throw new Error(`seeding ${sku} failed: ${response.status} ${await response.text()}`);
        }
        log(`seeded ${DEMO_CATALOGUE.length} demo products`);
      }
    }
    stops.push(async () => dynamoClient.destroy());

    return {
      apiUrl: gateway.url,
      natsUrl: nats.url,
      natsShared: nats.shared,
      natsStreams,
      dynamodbEndpoint: dynamodb.url,
      stripeUrl: stripe.url,
      stepFunctionsUrl: stepFunctions.url,
      lambdas: host,
      faults,
      tableNames,
      drained: async () => {
        await Promise.all(pollers.map((poller) => poller.drained()));
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
