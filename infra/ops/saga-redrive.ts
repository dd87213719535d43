import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  ExecutionNotRedrivable,
  RedriveExecutionCommand,
  SFNClient,
  paginateListExecutions,
  type ExecutionStatus,
} from '@aws-sdk/client-sfn';
import { parseArgs } from 'node:util';
import { clientConfig, OPS_TARGET_OPTIONS, OpsTargetError, resolveOpsTarget } from './target.ts';

/*
 * `npm run saga:redrive -- <orderId>…` or `npm run saga:redrive -- --failed`: restarts failed saga
 * executions from the step that failed (docs/operations.md). Locally against `npm start`, on AWS with
 * `--outputs <cdk outputs json>`.
 */

const USAGE = `usage: npm run saga:redrive -- <orderId>... | --failed [--status FAILED,TIMED_OUT,ABORTED] [--dry-run]
                                 [--outputs <cdk outputs json> [--stack <name>]]`;

/** The statuses RedriveExecution accepts; `--failed` looks for all three unless `--status` narrows it. */
const REDRIVABLE_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'] as const satisfies ExecutionStatus[];
type RedrivableStatus = (typeof REDRIVABLE_STATUSES)[number];

export interface RedriveOutcome {
  orderId: string;
  executionArn: string;
  /** The execution's status before the redrive; undefined when there is no execution for the order. */
  statusBefore: string | undefined;
  /** `redriven`; `listed` on a dry run; `refused` with the reason otherwise. */
  result: 'redriven' | 'listed' | 'refused';
  reason?: string;
  redriveCount?: number;
}

/** The saga's execution for an order: the execution name is the orderId. */
export function executionArnFor(stateMachineArn: string, orderId: string): string {
  const [prefix, name] = stateMachineArn.split(':stateMachine:');
  if (!prefix || !name) throw new OpsTargetError(`not a state machine ARN: ${stateMachineArn}`);
  return `${prefix}:execution:${name.split(':')[0]}:${orderId}`;
}

/** Redrives one execution, reporting a refusal (not redrivable, or no such execution) as a value. */
export async function redriveExecution(
  client: SFNClient,
  executionArn: string,
  options: { dryRun?: boolean } = {},
): Promise<RedriveOutcome> {
  const orderId = executionArn.split(':').at(-1) ?? executionArn;
  let statusBefore: string | undefined;
  try {
    const described = await client.send(new DescribeExecutionCommand({ executionArn }));
    statusBefore = described.status;
    if (options.dryRun) {
      return described.redriveStatus === 'REDRIVABLE'
        ? { orderId, executionArn, statusBefore, result: 'listed', redriveCount: described.redriveCount ?? 0 }
        : {
            orderId,
            executionArn,
            statusBefore,
            result: 'refused',
            reason: described.redriveStatusReason ?? `not redrivable (${String(described.redriveStatus)})`,
          };
    }
    await client.send(new RedriveExecutionCommand({ executionArn }));
    const after = await client.send(new DescribeExecutionCommand({ executionArn }));
    return { orderId, executionArn, statusBefore, result: 'redriven', redriveCount: after.redriveCount ?? 0 };
  } catch (error) {
    if (error instanceof ExecutionDoesNotExist) {
      return {
        orderId,
        executionArn,
        statusBefore,
        result: 'refused',
        reason: 'no execution for this order',
      };
    }
    if (error instanceof ExecutionNotRedrivable) {
      return { orderId, executionArn, statusBefore, result: 'refused', reason: error.message };
    }
    throw error;
  }
}

/** Every execution of the state machine in one of `statuses`, newest first per status. */
export async function listRedrivable(
  client: SFNClient,
  stateMachineArn: string,
  statuses: readonly RedrivableStatus[] = REDRIVABLE_STATUSES,
): Promise<string[]> {
  const arns: string[] = [];
  for (const statusFilter of statuses) {
    for await (const page of paginateListExecutions({ client }, { stateMachineArn, statusFilter })) {
      for (const execution of page.executions ?? []) {
        if (execution.executionArn) arns.push(execution.executionArn);
      }
    }
  }
  return arns;
}

export function formatOutcome(outcome: RedriveOutcome): string {
  const before = outcome.statusBefore ?? '-';
  const result =
    outcome.result === 'refused'
      ? `refused: ${outcome.reason}`
      : outcome.result === 'listed'
        ? 'redrivable (dry run)'
        : `redriven (redrive ${outcome.redriveCount})`;
  return `${outcome.orderId}  ${before}  ${result}`;
}

/**
 * The command: redrives the orders named, or with `--failed` every redrivable execution, printing
 * one line per execution. Resolves to the exit code: 0 when all were redriven (or none needed it), 1
 * when any was refused, 2 for a usage or target error.
 */
export async function runSagaRedrive(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: { out: (line: string) => void; err: (line: string) => void; runtimeInfoFile?: string } = {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
  },
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...OPS_TARGET_OPTIONS,
        failed: { type: 'boolean', default: false },
        status: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (error) {
    io.err(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const named = positionals.length > 0;
  if (values.failed ? named : !named) {
    io.err(`name the orders to redrive, or --failed, not both\n${USAGE}`);
    return 2;
  }
  const statuses = (values.status ?? REDRIVABLE_STATUSES.join(',')).split(',').map((s) => s.trim());
  const unknown = statuses.filter((s) => !(REDRIVABLE_STATUSES as readonly string[]).includes(s));
  if (unknown.length > 0 || (values.status !== undefined && !values.failed)) {
    io.err(`--status takes a list of ${REDRIVABLE_STATUSES.join(', ')}, with --failed\n${USAGE}`);
    return 2;
  }

  let target;
  try {
    target = resolveOpsTarget(
      values,
      env,
      io.runtimeInfoFile === undefined ? {} : { runtimeInfoFile: io.runtimeInfoFile },
    );
  } catch (error) {
    if (error instanceof OpsTargetError) {
      io.err(`saga:redrive: ${error.message}`);
      return 2;
    }
    throw error;
  }
  const client = new SFNClient(clientConfig(target, 'stepFunctions'));
  try {
    const { stateMachineArn } = target.stepFunctions;
    const arns = values.failed
      ? await listRedrivable(client, stateMachineArn, statuses as RedrivableStatus[])
      : positionals.map((orderId) => executionArnFor(stateMachineArn, orderId));
    if (arns.length === 0) {
      io.out(`no ${statuses.join('/')} executions of ${stateMachineArn}`);
      return 0;
    }
    let refused = 0;
    for (const executionArn of arns) {
      const outcome = await redriveExecution(client, executionArn, { dryRun: values['dry-run'] });
      if (outcome.result === 'refused') refused += 1;
      io.out(formatOutcome(outcome));
    }
    return refused > 0 ? 1 : 0;
  } finally {
    client.destroy();
  }
}

if (import.meta.main) {
  // Exit 1 is a finding; a run that could not finish (Stripe or AWS unreachable, say) is 2.
  process.exitCode = await runSagaRedrive(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${process.argv[1]}: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  });
}
