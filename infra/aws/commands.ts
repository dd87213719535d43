import { z } from 'zod';
import { parseConfig } from '../../shared/config.ts';
import { stackNameOf } from '../../stacks/app.ts';

/*
 * `npm run deploy` and `npm run destroy`: the CDK CLI's deploy and destroy of one stage, with the
 * stack's parameters and context taken from the environment (docs/deploy.md), so that a deploy is
 * one command a pipeline or a person can repeat. This module only builds the command lines; the
 * mains (deploy.ts, destroy.ts) run them.
 */

const arn = (service: string) =>
  z.string().regex(new RegExp(`^arn:aws[a-z-]*:${service}:`), `an ARN of ${service} (arn:aws:${service}:…)`);

/** Each optional variable and the context key it becomes. */
const CONTEXT_VARIABLES = {
  ALARM_EMAILS: 'alarmEmails',
  ALARM_URLS: 'alarmUrls',
  NATS_SECRET_ARN: 'natsSecretArn',
  SECRETS_KMS_KEY_ARN: 'secretsKmsKeyArn',
  JWT_ISSUER: 'jwtIssuer',
  JWT_AUDIENCE: 'jwtAudience',
  ADMIN_SCOPE: 'adminScope',
  TASK_CONCURRENCY: 'taskConcurrency',
  WEBHOOK_CONCURRENCY: 'webhookConcurrency',
} as const;

const StageSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,19}$/, 'lower-case letters, digits and dashes, at most 20');

const DeploySchema = z.object({
  STAGE: StageSchema.default('prod'),
  NATS_URL: z
    .string()
    .min(1, 'the JetStream cluster the bridge publishes to, e.g. nats://nats-1:4222,nats://nats-2:4222'),
  STRIPE_API_KEY_SECRET_ARN: arn('secretsmanager'),
  STRIPE_WEBHOOK_SECRET_ARN: arn('secretsmanager'),
  // Checked again, in full, by the CDK app (stacks/app.ts); here only that they are not empty.
  ...Object.fromEntries(Object.keys(CONTEXT_VARIABLES).map((name) => [name, z.string().min(1).optional()])),
});

export interface CdkCommand {
  stage: string;
  stack: string;
  /** Arguments of `cdk`. */
  args: string[];
}

/** Where `npm run deploy` writes the stage's outputs (what reconcile, saga:redrive and the e2e suite read). */
export const outputsFile = (stage: string) => `.tmp/outputs-${stage}.json`;

/** `cdk deploy` of the stage named by STAGE, with `extra` (arguments after `--`) passed on. */
export function deployCommand(env: NodeJS.ProcessEnv, extra: readonly string[] = []): CdkCommand {
  const config = parseConfig(DeploySchema, env) as z.infer<typeof DeploySchema> &
    Record<string, string | undefined>;
  const stack = stackNameOf(config.STAGE);
  const context = Object.entries(CONTEXT_VARIABLES).flatMap(([variable, key]) =>
    config[variable] === undefined ? [] : ['--context', `${key}=${config[variable]}`],
  );
  return {
    stage: config.STAGE,
    stack,
    args: [
      'deploy',
      stack,
      '--context',
      `stage=${config.STAGE}`,
      ...context,
      '--parameters',
      `${stack}:NatsUrl=${config.NATS_URL}`,
      '--parameters',
      `${stack}:StripeApiKeySecretArn=${config.STRIPE_API_KEY_SECRET_ARN}`,
      '--parameters',
      `${stack}:StripeWebhookSecretArn=${config.STRIPE_WEBHOOK_SECRET_ARN}`,
      '--outputs-file',
      outputsFile(config.STAGE),
      ...extra,
    ],
  };
}

const DestroySchema = z.object({
  STAGE: z
    .string({ message: 'name the stage to destroy (STAGE=dev npm run destroy); there is no default' })
    .pipe(StageSchema),
});

/**
 * `cdk destroy` of the stage named by STAGE. There is no default: a production stack is never
 * destroyed because a variable was left out. CDK asks before it deletes (unless `--force`).
 */
export function destroyCommand(env: NodeJS.ProcessEnv, extra: readonly string[] = []): CdkCommand {
  const { STAGE } = parseConfig(DestroySchema, env);
  const stack = stackNameOf(STAGE);
  return { stage: STAGE, stack, args: ['destroy', stack, '--context', `stage=${STAGE}`, ...extra] };
}
