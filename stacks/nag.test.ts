import { App, type IPolicyValidationPluginBeta1 } from 'aws-cdk-lib';
import { Queue } from 'aws-cdk-lib/aws-sqs';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { buildApp } from './app.ts';

/*
 * cdk-nag's AWS Solutions and Serverless packs on the stack as each kind of deploy shapes it. Every
 * finding is either fixed or acknowledged in code next to its cause, with its reason; a new one
 * fails here (and `npm run synth`, which runs the same packs, fails CI).
 */

function findings(context: Record<string, string> = {}, extend?: (app: App) => void): string[] {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } });
  const { stack } = buildApp(app, {});
  extend?.(stack as unknown as App);
  return [new AwsSolutionsChecks(app), new ServerlessChecks(app)].flatMap((pack) =>
    pack
      .validateScope(app)
      .violations.flatMap((violation) =>
        violation.violatingResources.map(
          (resource) => `${violation.ruleName} ${resource.constructPath ?? resource.resourceLogicalId}`,
        ),
      ),
  );
}

describe('cdk-nag', () => {
  it('finds nothing unacknowledged in the production stack', () => {
    expect(findings()).toEqual([]);
  });

  it('finds nothing with every option on: JWT, NATS secret, customer-managed key, pager, emulator URL', () => {
    expect(
      findings({
        jwtIssuer: 'https://issuer.example.com/',
        jwtAudience: 'order-saga',
        natsSecretArn: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:nats-AbCdEf',
        secretsKmsKeyArn: 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab',
        alarmEmails: 'oncall@example.com',
        alarmUrls: 'https://pager.example.com/sns',
        stripeApiUrl: 'http://host.docker.internal:12111',
      }),
    ).toEqual([]);
  });

  it('finds nothing in an ephemeral stage without reserved concurrency (LocalStack, a pull request)', () => {
    expect(findings({ stage: 'localstack', taskConcurrency: 'off', webhookConcurrency: 'off' })).toEqual([]);
  });

  it('does find a resource added without care, so a new finding cannot slip through', () => {
    const found = findings({}, (stack) => new Queue(stack, 'Careless'));
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^AwsSolutions-SQS4 .*\/Careless/),
        expect.stringMatching(/^Serverless-SQSRedrivePolicy .*\/Careless/),
      ]),
    );
  });

  it('runs on every synth of the CDK app itself, where a finding fails it', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const { stack } = buildApp(app, {}, { nag: true });
    new Queue(stack, 'Careless');
    expect(() => app.synth()).toThrow(/SQS/);
    const plugins = (app as unknown as { policyValidationBeta1?: IPolicyValidationPluginBeta1[] })
      .policyValidationBeta1;
    expect(plugins?.map((plugin) => plugin.name) ?? ['AwsSolutions', 'Serverless']).toEqual(
      expect.arrayContaining(['AwsSolutions', 'Serverless']),
    );
  });
});
