import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { z } from 'zod';
import { LOCAL_STRIPE_API_KEY } from '../local/config.ts';
import { LOCAL_RUNTIME_INFO_FILE, LocalRuntimeInfoSchema } from '../local/runtime-info.ts';

/*
 * What an operations script (saga redrive, reconciliation, …) works on: the local runtime of a running
 * `npm start`, or a deployed stack. Scripts build their SDK clients from this and nothing else, so one
 * script runs unchanged against both.
 */

/** A target that cannot be resolved: the message is one sentence for the operator. */
export class OpsTargetError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'OpsTargetError';
  }
}

export interface OpsTarget {
  kind: 'local' | 'aws';
  /**
   * For AWS SDK clients: the region the state machine lives in, and locally the credentials; on AWS the
   * SDK's default credential chain applies (AWS_PROFILE and so on).
   */
  aws: { region: string; credentials?: { accessKeyId: string; secretAccessKey: string } };
  /** `endpoint` only locally; on AWS the SDK resolves it (AWS_ENDPOINT_URL_SFN, AWS_ENDPOINT_URL work). */
  stepFunctions: { endpoint?: string; stateMachineArn: string };
  dynamodb: { endpoint?: string };
  /** `apiKey` absent on AWS unless STRIPE_SECRET_KEY is set: see requireStripe(). */
  stripe: { apiUrl?: string; apiKey?: string };
  tableNames: { orders: string; inventory: string; payments: string };
  apiUrl?: string;
  natsUrl?: string;
}

/** The command-line options every operations script accepts (node:util parseArgs format). */
export const OPS_TARGET_OPTIONS = {
  /** A CDK outputs file (`cdk deploy --outputs-file`): target that deployed stack instead of npm start. */
  outputs: { type: 'string' },
  /** The stack in the outputs file; needed only when it holds more than one. */
  stack: { type: 'string' },
} as const;

export interface OpsTargetArgs {
  outputs?: string | undefined;
  stack?: string | undefined;
}

export interface ResolveOptions {
  /** Default `.tmp/local-runtime.json` in the project. */
  runtimeInfoFile?: string;
}

/**
 * Locally (no `--outputs`): the running `npm start`, from the file it writes when ready. On AWS: the
 * stack's outputs (`StateMachineArn`, `OrdersTableName`, `InventoryTableName`, `PaymentsTableName`,
 * the HTTP API's `…Url`), with the Stripe key from STRIPE_SECRET_KEY and optionally STRIPE_API_URL.
 */
export function resolveOpsTarget(
  args: OpsTargetArgs,
  env: NodeJS.ProcessEnv = process.env,
  options: ResolveOptions = {},
): OpsTarget {
  if (args.outputs !== undefined) return deployedTarget(args.outputs, args.stack, env);
  if (args.stack !== undefined) throw new OpsTargetError('--stack needs --outputs <cdk outputs json>');
  return localTarget(options.runtimeInfoFile ?? LOCAL_RUNTIME_INFO_FILE);
}

/** The Stripe API of the target, or an error saying how to give the key. */
export function requireStripe(target: OpsTarget): { apiUrl?: string; apiKey: string } {
  const { apiKey, apiUrl } = target.stripe;
  if (apiKey === undefined) {
    throw new OpsTargetError('STRIPE_SECRET_KEY is not set: give the Stripe secret key the stack uses');
  }
  return apiUrl === undefined ? { apiKey } : { apiKey, apiUrl };
}

function readJson(file: string, what: string, missing: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new OpsTargetError(missing);
    throw new OpsTargetError(`cannot read ${what} ${file}: ${String(error)}`, { cause: error });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new OpsTargetError(`${what} ${file} is not JSON`, { cause: error });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function localTarget(file: string): OpsTarget {
  const shown = relative(process.cwd(), file) || file;
  const json = readJson(
    file,
    'runtime info',
    `npm start is not running (no ${shown}); start it, or pass --outputs <cdk outputs json> for a deployed stack`,
  );
  const parsed = LocalRuntimeInfoSchema.safeParse(json);
  if (!parsed.success) {
    throw new OpsTargetError(`${shown} is not a runtime info file: ${z.prettifyError(parsed.error)}`);
  }
  const info = parsed.data;
  if (!isRunning(info.pid)) {
    throw new OpsTargetError(`npm start is not running (${shown} is left over from pid ${info.pid})`);
  }
  return {
    kind: 'local',
    aws: {
      region: regionOf(info.stateMachineArn),
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    },
    stepFunctions: { endpoint: info.stepFunctionsUrl, stateMachineArn: info.stateMachineArn },
    dynamodb: { endpoint: info.dynamodbEndpoint },
    stripe: { apiUrl: info.stripeUrl, apiKey: LOCAL_STRIPE_API_KEY },
    tableNames: info.tableNames,
    apiUrl: info.apiUrl,
    natsUrl: info.natsUrl,
  };
}

/** The region in an ARN (arn:partition:service:region:account:…). */
function regionOf(arn: string): string {
  const region = arn.split(':')[3];
  if (!region) throw new OpsTargetError(`no region in the state machine ARN ${arn}`);
  return region;
}

const StackOutputsSchema = z.record(z.string(), z.string());

const REQUIRED_OUTPUTS = ['StateMachineArn', 'OrdersTableName', 'InventoryTableName', 'PaymentsTableName'];

function deployedTarget(file: string, stackName: string | undefined, env: NodeJS.ProcessEnv): OpsTarget {
  const parsed = z
    .record(z.string(), StackOutputsSchema)
    .safeParse(readJson(file, 'CDK outputs file', `no CDK outputs file ${file}`));
  if (!parsed.success) {
    throw new OpsTargetError(`${file} is not a CDK outputs file ({"<stack>": {"<output>": "<value>"}})`);
  }
  const stacks = Object.keys(parsed.data);
  const name = stackName ?? (stacks.length === 1 ? stacks[0] : undefined);
  if (name === undefined) {
    throw new OpsTargetError(`${file} holds stacks ${stacks.join(', ') || '(none)'}: pick one with --stack`);
  }
  const outputs = parsed.data[name];
  if (!outputs) throw new OpsTargetError(`${file} has no stack ${name} (it has ${stacks.join(', ')})`);
  const missing = REQUIRED_OUTPUTS.filter((key) => !outputs[key]);
  if (missing.length > 0) {
    throw new OpsTargetError(
      `stack ${name} in ${file} lacks the output(s) ${missing.join(', ')}: deploy the current stack and write its outputs again`,
    );
  }
  // The HTTP API's output is `Url` in the Http construct, so its logical ID carries a hash suffix.
  const apiUrl = outputs.ApiUrl ?? Object.entries(outputs).find(([key]) => /^HttpUrl/.test(key))?.[1];
  return {
    kind: 'aws',
    aws: { region: regionOf(outputs.StateMachineArn!) },
    stepFunctions: { stateMachineArn: outputs.StateMachineArn! },
    dynamodb: {},
    stripe: {
      ...(env.STRIPE_API_URL ? { apiUrl: env.STRIPE_API_URL } : {}),
      ...(env.STRIPE_SECRET_KEY ? { apiKey: env.STRIPE_SECRET_KEY } : {}),
    },
    tableNames: {
      orders: outputs.OrdersTableName!,
      inventory: outputs.InventoryTableName!,
      payments: outputs.PaymentsTableName!,
    },
    ...(apiUrl ? { apiUrl: apiUrl.replace(/\/$/, '') } : {}),
  };
}

/** Client configuration for a Step Functions or DynamoDB SDK client of the target. */
export function clientConfig(
  target: OpsTarget,
  service: 'stepFunctions' | 'dynamodb',
): OpsTarget['aws'] & { endpoint?: string } {
  const endpoint = target[service].endpoint;
  return { ...target.aws, ...(endpoint === undefined ? {} : { endpoint }) };
}
