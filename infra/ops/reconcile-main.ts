import { SFNClient } from '@aws-sdk/client-sfn';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import Stripe from 'stripe';
import {
  DEFAULT_NOT_FINAL_AFTER_SECONDS,
  formatReport,
  reconcileReport,
  type ReconcileReport,
  type ReconcileSources,
} from './reconcile.ts';
import {
  clientConfig,
  OPS_TARGET_OPTIONS,
  OpsTargetError,
  requireStripe,
  resolveOpsTarget,
} from './target.ts';

/*
 * `npm run reconcile`: prints every discrepancy between orders, reservations, products, Stripe and
 * the saga's executions (infra/ops/reconcile.ts). Locally against `npm start`, on AWS with
 * `--outputs <cdk outputs json>` and STRIPE_SECRET_KEY. Exit code 0 when clean, 1 on any
 * discrepancy, 2 for a usage or target error.
 */

const USAGE = `usage: npm run reconcile -- [--not-final-after SECONDS] [--json] [--once]
                              [--outputs <cdk outputs json> [--stack <name>]]`;

/** How long the second pass waits, so that what was mid-write in the first has landed. */
const RECHECK_DELAY_MS = 3_000;

/**
 * A discrepancy found by the first pass stands only if the second finds it too (same kind and id),
 * with the second's figures: a scan of a busy system meets writes half-way.
 */
export function confirmedBy(first: ReconcileReport, second: ReconcileReport): ReconcileReport {
  const seen = new Set(first.discrepancies.map((d) => `${d.kind}\u0000${d.id}`));
  return {
    ...second,
    discrepancies: second.discrepancies.filter((d) => seen.has(`${d.kind}\u0000${d.id}`)),
  };
}

export function stripeClient(options: { apiKey: string; apiUrl?: string }): Stripe {
  const url = options.apiUrl ? new URL(options.apiUrl) : undefined;
  return new Stripe(options.apiKey, {
    maxNetworkRetries: 2,
    timeout: 10_000,
    ...(url
      ? {
          host: url.hostname,
          port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
          protocol: url.protocol.replace(':', '') as 'http' | 'https',
        }
      : {}),
  });
}

/** The command; resolves to its exit code. */
export async function runReconcile(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
  io: {
    out: (line: string) => void;
    err: (line: string) => void;
    runtimeInfoFile?: string;
    recheckDelayMs?: number;
  } = {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
  },
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...OPS_TARGET_OPTIONS,
        'not-final-after': { type: 'string' },
        json: { type: 'boolean', default: false },
        once: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    io.err(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const notFinalAfter = values['not-final-after'];
  const notFinalAfterSeconds =
    notFinalAfter === undefined ? DEFAULT_NOT_FINAL_AFTER_SECONDS : Number(notFinalAfter);
  if (!Number.isInteger(notFinalAfterSeconds) || notFinalAfterSeconds < 0) {
    io.err(`--not-final-after takes a whole number of seconds, not ${notFinalAfter}\n${USAGE}`);
    return 2;
  }

  let target;
  let stripeApi;
  try {
    target = resolveOpsTarget(
      values,
      env,
      io.runtimeInfoFile === undefined ? {} : { runtimeInfoFile: io.runtimeInfoFile },
    );
    stripeApi = requireStripe(target);
  } catch (error) {
    if (error instanceof OpsTargetError) {
      io.err(`reconcile: ${error.message}`);
      return 2;
    }
    throw error;
  }

  const raw = new DynamoDBClient(clientConfig(target, 'dynamodb'));
  const sfn = new SFNClient(clientConfig(target, 'stepFunctions'));
  const sources: ReconcileSources = {
    dynamodb: DynamoDBDocumentClient.from(raw),
    tableNames: target.tableNames,
    stripe: stripeClient(stripeApi),
    stepFunctions: { client: sfn, stateMachineArn: target.stepFunctions.stateMachineArn },
  };
  try {
    const pass = () => reconcileReport(sources, { now: new Date(), notFinalAfterSeconds });
    let report = await pass();
    if (report.discrepancies.length > 0 && !values.once) {
      await sleep(io.recheckDelayMs ?? RECHECK_DELAY_MS);
      report = confirmedBy(report, await pass());
    }
    if (values.json) io.out(JSON.stringify(report, null, 2));
    else for (const line of formatReport(report)) io.out(line);
    return report.discrepancies.length > 0 ? 1 : 0;
  } finally {
    sfn.destroy();
    raw.destroy();
  }
}

if (import.meta.main) {
  // Exit 1 is a finding; a run that could not finish (Stripe or AWS unreachable, say) is 2.
  process.exitCode = await runReconcile(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`${process.argv[1]}: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  });
}
