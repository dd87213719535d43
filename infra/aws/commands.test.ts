import { describe, expect, it } from 'vitest';
import { deployCommand, destroyCommand } from './commands.ts';

const required = {
  NATS_URL: 'nats://nats-1.internal:4222,nats://nats-2.internal:4222',
  STRIPE_API_KEY_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:stripe-api-key-AbCdEf',
  STRIPE_WEBHOOK_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:stripe-webhook-AbCdEf',
};

describe('npm run deploy', () => {
  it('deploys prod as OrderSaga with the three parameters, writing its outputs for the ops tools', () => {
    const command = deployCommand(required);
    expect(command).toMatchObject({ stage: 'prod', stack: 'OrderSaga' });
    expect(command.args).toEqual([
      'deploy',
      'OrderSaga',
      '--context',
      'stage=prod',
      '--parameters',
      `OrderSaga:NatsUrl=${required.NATS_URL}`,
      '--parameters',
      `OrderSaga:StripeApiKeySecretArn=${required.STRIPE_API_KEY_SECRET_ARN}`,
      '--parameters',
      `OrderSaga:StripeWebhookSecretArn=${required.STRIPE_WEBHOOK_SECRET_ARN}`,
      '--outputs-file',
      '.tmp/outputs-prod.json',
    ]);
  });

  it('turns the optional variables into context, and passes the arguments after -- on', () => {
    const command = deployCommand(
      {
        ...required,
        STAGE: 'pr-42',
        ALARM_EMAILS: 'oncall@example.com',
        TASK_CONCURRENCY: 'off',
        JWT_ISSUER: 'https://issuer.example.com/',
        JWT_AUDIENCE: 'order-saga',
      },
      ['--require-approval', 'never'],
    );
    expect(command.stack).toBe('OrderSaga-pr-42');
    expect(command.args).toEqual(
      expect.arrayContaining([
        'stage=pr-42',
        'alarmEmails=oncall@example.com',
        'taskConcurrency=off',
        'jwtIssuer=https://issuer.example.com/',
        'jwtAudience=order-saga',
        'OrderSaga-pr-42:NatsUrl=' + required.NATS_URL,
        '.tmp/outputs-pr-42.json',
      ]),
    );
    expect(command.args.slice(-2)).toEqual(['--require-approval', 'never']);
  });

  it('names every missing or malformed variable at once, and deploys nothing', () => {
    expect(() => deployCommand({ STAGE: 'Prod', STRIPE_API_KEY_SECRET_ARN: 'sk_live_oops' })).toThrow(
      /STAGE:[\s\S]*NATS_URL:[\s\S]*STRIPE_API_KEY_SECRET_ARN: an ARN of secretsmanager[\s\S]*STRIPE_WEBHOOK_SECRET_ARN/,
    );
  });
});

describe('npm run destroy', () => {
  it('destroys the stage it is told, and refuses to guess one', () => {
    expect(destroyCommand({ STAGE: 'dev' }).args).toEqual([
      'destroy',
      'OrderSaga-dev',
      '--context',
      'stage=dev',
    ]);
    expect(destroyCommand({ STAGE: 'prod' }, ['--force']).args).toEqual([
      'destroy',
      'OrderSaga',
      '--context',
      'stage=prod',
      '--force',
    ]);
    expect(() => destroyCommand({})).toThrow(/name the stage to destroy/);
  });
});
