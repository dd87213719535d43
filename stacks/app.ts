import { App } from 'aws-cdk-lib';
import { DEFAULT_ADMIN_SCOPE } from '../shared/caller.ts';
import { OrderSagaStack } from './order-saga-stack.ts';
import { settingsFrom } from './settings.ts';

export const STACK_NAME = 'OrderSaga';

/** Builds the CDK app; the local runtime calls this too, to synthesize the very same template. */
export function buildApp(
  app: App = new App(),
  env: NodeJS.ProcessEnv = process.env,
): { app: App; stack: OrderSagaStack } {
  const issuer = app.node.tryGetContext('jwtIssuer') as string | undefined;
  const audience = app.node.tryGetContext('jwtAudience') as string | undefined;
  const stripeApiUrl = app.node.tryGetContext('stripeApiUrl') as string | undefined;
  const natsSecretArn = app.node.tryGetContext('natsSecretArn') as string | undefined;
  const stack = new OrderSagaStack(app, STACK_NAME, {
    settings: settingsFrom(env),
    ephemeral: app.node.tryGetContext('ephemeral') === 'true' || app.node.tryGetContext('ephemeral') === true,
    ...(issuer && audience
      ? {
          jwt: {
            issuer,
            audience: audience.split(','),
            adminScope: (app.node.tryGetContext('adminScope') as string | undefined) ?? DEFAULT_ADMIN_SCOPE,
          },
        }
      : {}),
    ...(stripeApiUrl ? { stripeApiUrl } : {}),
    ...(natsSecretArn ? { natsSecretArn } : {}),
    env: { account: env.CDK_DEFAULT_ACCOUNT, region: env.CDK_DEFAULT_REGION },
  });
  return { app, stack };
}

if (import.meta.main) {
  buildApp().app.synth();
}
