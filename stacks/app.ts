import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { z } from 'zod';
import { DEFAULT_ADMIN_SCOPE } from '../shared/caller.ts';
import { DEFAULT_CONCURRENCY, OrderSagaStack } from './order-saga-stack.ts';
import { settingsFrom } from './settings.ts';
import { stageSettings } from './stage.ts';

export const STACK_NAME = 'OrderSaga';

/** The production stage keeps the stack's first name; every other stage is a stack of its own. */
export const stackNameOf = (stage: string) => (stage === 'prod' ? STACK_NAME : `${STACK_NAME}-${stage}`);

/** A comma-separated list of `item`s. */
const listOf = <T extends z.ZodType<string, string>>(item: T) =>
  z
    .string()
    .transform((value) =>
      value
        .split(',')
        .map((part) => part.trim())
        .filter(Boolean),
    )
    .pipe(z.array(item))
    .optional();
const concurrency = z.union([z.literal('off'), z.coerce.number().int().min(1).max(1000)]).optional();

/**
 * The deploy's context (`-c name=value`, or cdk.json): docs/deploy.md has each one. Checked here,
 * so that a typo stops the synth with its name instead of deploying a default.
 */
const ContextSchema = z.object({
  stage: z.string().optional(),
  ephemeral: z.enum(['true', 'false']).optional(),
  // A URL on AWS (API Gateway checks it); the local runtime's issuer is a plain name.
  jwtIssuer: z.string().min(1).optional(),
  jwtAudience: listOf(z.string().min(1)),
  adminScope: z.string().min(1).optional(),
  stripeApiUrl: z.url().optional(),
  natsSecretArn: z.string().startsWith('arn:').optional(),
  secretsKmsKeyArn: z.string().startsWith('arn:').optional(),
  alarmEmails: listOf(z.email()),
  alarmUrls: listOf(z.url({ protocol: /^https$/, message: 'an https:// URL' })),
  taskConcurrency: concurrency,
  webhookConcurrency: concurrency,
});

export class ContextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContextError';
  }
}

function contextOf(app: App) {
  const raw = Object.fromEntries(
    Object.keys(ContextSchema.shape).flatMap((key) => {
      const value: unknown = app.node.tryGetContext(key);
      return value === undefined ? [] : [[key, String(value)]];
    }),
  );
  const parsed = ContextSchema.safeParse(raw);
  if (!parsed.success)
    throw new ContextError(
      `invalid context: ${parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`).join('; ')}`,
    );
  return parsed.data;
}

/**
 * Builds the CDK app; the local runtime calls this too, to synthesize the very same template. With
 * `nag` (every `cdk synth` and deploy), the AWS Solutions and Serverless rule packs check it: an
 * unacknowledged finding fails the synth.
 */
export function buildApp(
  app: App = new App(),
  env: NodeJS.ProcessEnv = process.env,
  options: { nag?: boolean } = {},
): { app: App; stack: OrderSagaStack } {
  const context = contextOf(app);
  if ((context.jwtIssuer === undefined) !== (context.jwtAudience === undefined))
    throw new ContextError('invalid context: jwtIssuer and jwtAudience go together');
  const stage = stageSettings(
    context.stage,
    context.ephemeral === undefined ? undefined : context.ephemeral === 'true',
  );
  const reserved = (value: number | 'off' | undefined, fallback: number) =>
    value === 'off' ? undefined : (value ?? fallback);
  const taskConcurrency = reserved(context.taskConcurrency, DEFAULT_CONCURRENCY.tasks);
  const webhookConcurrency = reserved(context.webhookConcurrency, DEFAULT_CONCURRENCY.webhook);
  const stack = new OrderSagaStack(app, stackNameOf(stage.name), {
    settings: settingsFrom(env),
    stage,
    ...(context.jwtIssuer && context.jwtAudience
      ? {
          jwt: {
            issuer: context.jwtIssuer,
            audience: context.jwtAudience,
            adminScope: context.adminScope ?? DEFAULT_ADMIN_SCOPE,
          },
        }
      : {}),
    ...(context.stripeApiUrl ? { stripeApiUrl: context.stripeApiUrl } : {}),
    ...(context.natsSecretArn ? { natsSecretArn: context.natsSecretArn } : {}),
    ...(context.secretsKmsKeyArn ? { secretsKeyArn: context.secretsKmsKeyArn } : {}),
    alarms: { emails: context.alarmEmails ?? [], urls: context.alarmUrls ?? [] },
    concurrency: {
      ...(taskConcurrency ? { tasks: taskConcurrency } : {}),
      ...(webhookConcurrency ? { webhook: webhookConcurrency } : {}),
    },
    env: { account: env.CDK_DEFAULT_ACCOUNT, region: env.CDK_DEFAULT_REGION },
  });
  if (options.nag) {
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
  }
  return { app, stack };
}

if (import.meta.main) {
  buildApp(undefined, undefined, { nag: true }).app.synth();
}
