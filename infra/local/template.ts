import { App } from 'aws-cdk-lib';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../../stacks/app.ts';
import { ENTRY_METADATA, SCHEDULE_SECONDS_METADATA } from '../../stacks/service-function.ts';

/*
 * Reads the local topology out of the CloudFormation template the CDK app synthesizes: tables,
 * functions (with their entry files and environment), the state machine's ASL, HTTP routes, stream
 * event source mappings and schedules. Nothing here is a second copy of the stack: change the stack
 * and the local runtime follows.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Resource = { Type: string; Properties?: Record<string, Json>; Metadata?: Record<string, Json> };
export interface Template {
  Resources: Record<string, Resource>;
  Parameters?: Record<string, Json>;
}

/**
 * Synthesizes the stack in-process with asset bundling skipped, and returns its template. `context`
 * is CDK context, as `cdk synth -c` gives it (e.g. `jwtIssuer`, `jwtAudience`).
 */
export async function synthesizeTemplate(
  env: NodeJS.ProcessEnv,
  context: Record<string, string> = {},
): Promise<Template> {
  const outdir = await mkdtemp(join(tmpdir(), 'order-saga-synth-'));
  try {
    const app = new App({ outdir, context: { ...context, 'aws:cdk:bundling-stacks': [] } });
    const { stack } = buildApp(app, env);
    const assembly = app.synth();
    return assembly.getStackArtifact(stack.artifactId).template as Template;
  } finally {
    await rm(outdir, { recursive: true, force: true });
  }
}

/** Values the runtime gives to `Ref` and `Fn::GetAtt` of each resource and parameter. */
export interface Bindings {
  ref(logicalId: string): string;
  getAtt(logicalId: string, attribute: string): string;
}

/** Resolves the intrinsic functions CDK emits for the values the local runtime reads. */
export function resolve(value: Json, bindings: Bindings): Json {
  if (Array.isArray(value)) return value.map((item) => resolve(item, bindings));
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  if (keys.length === 1) {
    const [key] = keys as [string];
    const argument = value[key]!;
    switch (key) {
      case 'Ref':
        return bindings.ref(String(argument));
      case 'Fn::GetAtt': {
        const [logicalId, attribute] = argument as [string, string];
        return bindings.getAtt(logicalId, attribute);
      }
      case 'Fn::Join': {
        const [separator, parts] = argument as [string, Json[]];
        return parts.map((part) => String(resolve(part, bindings))).join(separator);
      }
      case 'Fn::Select': {
        const [index, list] = argument as [number, Json];
        return (resolve(list, bindings) as Json[])[Number(index)] ?? null;
      }
      case 'Fn::Split': {
        const [separator, source] = argument as [string, Json];
        return String(resolve(source, bindings)).split(separator);
      }
      default:
        if (key.startsWith('Fn::')) throw new Error(`the local runtime cannot resolve ${key}`);
    }
  }
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, resolve(item, bindings)]));
}

export interface FunctionSpec {
  logicalId: string;
  entry: string;
  environment: Record<string, string>;
  timeoutSeconds: number;
  memorySize: number;
}

export interface RouteSpec {
  method: string;
  path: string;
  functionId: string;
  /** `NONE`, `JWT` or `AWS_IAM`. */
  authorizationType: string;
  /** The scopes a JWT must carry (any one of them); empty when the route asks for none. */
  authorizationScopes: string[];
}

/** The stack's JWT authorizer, when it was synthesized with one. */
export interface JwtAuthorizerSpec {
  issuer: string;
  audience: string[];
}

export interface EventSourceSpec {
  functionId: string;
  tableId: string;
  batchSize: number;
  maximumBatchingWindowSeconds: number;
  startingPosition: 'TRIM_HORIZON' | 'LATEST';
  filters: Array<{ Pattern: string }>;
  reportBatchItemFailures: boolean;
  maximumRetryAttempts: number;
}

export interface ScheduleSpec {
  functionId: string;
  intervalSeconds: number;
}

export interface Topology {
  tables: Array<{ logicalId: string; properties: Record<string, Json> }>;
  functions: FunctionSpec[];
  stateMachine: { logicalId: string; definition: Record<string, unknown> };
  routes: RouteSpec[];
  jwtAuthorizer?: JwtAuthorizerSpec;
  eventSources: EventSourceSpec[];
  schedules: ScheduleSpec[];
}

const ofType = (template: Template, type: string) =>
  Object.entries(template.Resources).filter(([, resource]) => resource.Type === type);

/** The function a Lambda ARN (as the bindings render it) points at. */
export function functionIdFromArn(arn: string): string {
  const name = arn.split(':function:')[1];
  if (!name) throw new Error(`not a Lambda function ARN: ${arn}`);
  return name.split(':')[0]!;
}

const RATE_EXPRESSION = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/;
const RATE_UNIT_SECONDS: Record<string, number> = { minute: 60, hour: 3600, day: 86_400 };

/**
 * A schedule rule's interval: the seconds its metadata gives (EventBridge rates are whole minutes),
 * else its rate expression. Anything else stops the start rather than fall back to a guess.
 */
function scheduleSeconds(logicalId: string, resource: Resource): number {
  const seconds = resource.Metadata?.[SCHEDULE_SECONDS_METADATA];
  if (typeof seconds === 'number' && seconds > 0) return seconds;
  const rate = RATE_EXPRESSION.exec(String(resource.Properties?.ScheduleExpression ?? ''));
  if (rate) return Number(rate[1]) * RATE_UNIT_SECONDS[rate[2]!.replace(/s$/, '')]!;
  throw new Error(
    `schedule rule ${logicalId} has no ${SCHEDULE_SECONDS_METADATA} metadata and no rate() expression the local runtime can time`,
  );
}

export function readTopology(template: Template, bindings: Bindings): Topology {
  const props = (resource: Resource) => resource.Properties ?? {};
  const logicalIdOf = (value: Json) => {
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      if ('Ref' in value) return String(value.Ref);
      if ('Fn::GetAtt' in value) return String((value['Fn::GetAtt'] as Json[])[0]);
    }
    throw new Error(`expected a Ref or Fn::GetAtt, got ${JSON.stringify(value)}`);
  };

  const tables = ofType(template, 'AWS::DynamoDB::Table').map(([logicalId, resource]) => ({
    logicalId,
    properties: props(resource),
  }));

  const functions = ofType(template, 'AWS::Lambda::Function').flatMap(([logicalId, resource]) => {
    const entry = resource.Metadata?.[ENTRY_METADATA];
    if (typeof entry !== 'string') return []; // CDK's own helper functions (log retention, etc.)
    const variables = ((props(resource).Environment as Record<string, Json> | undefined)?.Variables ??
      {}) as Record<string, Json>;
    const environment = Object.fromEntries(
      Object.entries(variables).map(([name, value]) => [name, String(resolve(value, bindings))]),
    );
    return [
      {
        logicalId,
        entry,
        environment,
        timeoutSeconds: Number(props(resource).Timeout ?? 3),
        memorySize: Number(props(resource).MemorySize ?? 128),
      },
    ];
  });

  const machines = ofType(template, 'AWS::StepFunctions::StateMachine');
  if (machines.length !== 1) throw new Error(`expected one state machine, found ${machines.length}`);
  const [machineId, machine] = machines[0]!;
  const definitionString = resolve(props(machine).DefinitionString!, bindings);
  const stateMachine = {
    logicalId: machineId,
    definition: JSON.parse(String(definitionString)) as Record<string, unknown>,
  };

  const integrations = new Map(
    ofType(template, 'AWS::ApiGatewayV2::Integration').map(([logicalId, resource]) => [
      logicalId,
      functionIdFromArn(String(resolve(props(resource).IntegrationUri!, bindings))),
    ]),
  );
  const routes = ofType(template, 'AWS::ApiGatewayV2::Route').map(([, resource]) => {
    const [method, path] = String(props(resource).RouteKey).split(' ') as [string, string];
    const target = String(resolve(props(resource).Target!, bindings)).replace(/^integrations\//, '');
    const functionId = integrations.get(target);
    if (!functionId) throw new Error(`route ${method} ${path} targets unknown integration ${target}`);
    return {
      method,
      path,
      functionId,
      authorizationType: String(props(resource).AuthorizationType ?? 'NONE'),
      authorizationScopes: ((props(resource).AuthorizationScopes as string[] | undefined) ?? []).map(String),
    };
  });
  const jwtAuthorizers = ofType(template, 'AWS::ApiGatewayV2::Authorizer')
    .map(([, resource]) => props(resource))
    .filter((p) => p.AuthorizerType === 'JWT')
    .map((p) => {
      const configuration = p.JwtConfiguration as { Issuer?: string; Audience?: string[] } | undefined;
      return {
        issuer: String(configuration?.Issuer ?? ''),
        audience: (configuration?.Audience ?? []).map(String),
      };
    });
  if (jwtAuthorizers.length > 1) throw new Error('the stack has more than one JWT authorizer');
  const jwtAuthorizer = jwtAuthorizers[0];

  const eventSources = ofType(template, 'AWS::Lambda::EventSourceMapping').map(([, resource]) => {
    const p = props(resource);
    const filters = ((p.FilterCriteria as Record<string, Json> | undefined)?.Filters ?? []) as Array<{
      Pattern: string;
    }>;
    return {
      functionId: logicalIdOf(p.FunctionName!),
      tableId: logicalIdOf(p.EventSourceArn!),
      batchSize: Number(p.BatchSize ?? 100),
      maximumBatchingWindowSeconds: Number(p.MaximumBatchingWindowInSeconds ?? 0),
      startingPosition: (p.StartingPosition ?? 'TRIM_HORIZON') as 'TRIM_HORIZON' | 'LATEST',
      filters,
      reportBatchItemFailures: ((p.FunctionResponseTypes ?? []) as string[]).includes(
        'ReportBatchItemFailures',
      ),
      maximumRetryAttempts: Number(p.MaximumRetryAttempts ?? -1),
    };
  });

  const schedules = ofType(template, 'AWS::Events::Rule').flatMap(([logicalId, resource]) => {
    const intervalSeconds = scheduleSeconds(logicalId, resource);
    const targets = (props(resource).Targets ?? []) as Array<Record<string, Json>>;
    return targets.map((target) => ({
      functionId: functionIdFromArn(String(resolve(target.Arn!, bindings))),
      intervalSeconds,
    }));
  });

  return {
    tables,
    functions,
    stateMachine,
    routes,
    ...(jwtAuthorizer ? { jwtAuthorizer } : {}),
    eventSources,
    schedules,
  };
}
