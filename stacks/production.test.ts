import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  ACTIVE_BY_EXPIRY_INDEX,
  PRODUCTS_BY_SKU_INDEX,
  RESERVATIONS_BY_SKU_INDEX,
} from '../functions/inventory/inventory-repository.ts';
import { BY_PAYMENT_INTENT_INDEX } from '../functions/payments/payment-repository.ts';
import { buildApp } from './app.ts';
import { DEFAULT_CONCURRENCY, DEFAULT_THROTTLE } from './order-saga-stack.ts';
import { ENTRY_METADATA } from './service-function.ts';

/*
 * What a security review and an on-call rotation are promised, read from the template: every
 * function's grants, the secrets each may read, reserved concurrency, the API's throttling and
 * access logs, stages, retention. (The saga's shape is stacks/order-saga-stack.test.ts.)
 */

type Json = Record<string, unknown>;
interface Resource {
  Type: string;
  Properties: Json;
  Metadata?: Json;
  DeletionPolicy?: string;
}
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Json;
}

function synth(context: Json = {}): Template {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } });
  return Template.fromStack(buildApp(app, {}).stack);
}
const resourcesOf = (template: Template, type: string) =>
  Object.entries(template.toJSON().Resources as Record<string, Resource>).filter(([, r]) => r.Type === type);

/** The stack's own functions, by entry file. */
function functionsOf(template: Template): Map<string, [string, Resource]> {
  return new Map(
    resourcesOf(template, 'AWS::Lambda::Function')
      .filter(([, fn]) => typeof fn.Metadata?.[ENTRY_METADATA] === 'string')
      .map(([id, fn]) => [fn.Metadata![ENTRY_METADATA] as string, [id, fn]]),
  );
}

function roleOf(fn: Resource): string {
  return (fn.Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
}

function statementsOf(template: Template, roleId: string): Statement[] {
  return resourcesOf(template, 'AWS::IAM::Policy')
    .filter(([, policy]) => (policy.Properties.Roles as Json[]).some((role) => role.Ref === roleId))
    .flatMap(([, policy]) => (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}
const actionsOf = (statements: Statement[]) => statements.flatMap((s) => ([] as string[]).concat(s.Action));
const targetsOf = (statements: Statement[], action: string) =>
  statements
    .filter((s) => ([] as string[]).concat(s.Action).includes(action))
    .flatMap((s) => ([] as unknown[]).concat(s.Resource))
    .map((resource) => JSON.stringify(resource));

const TASKS = [
  'functions/orders/saga-step.ts',
  'functions/inventory/reserve-stock.ts',
  'functions/inventory/confirm-stock.ts',
  'functions/inventory/release-stock.ts',
  'functions/payments/create-payment.ts',
  'functions/payments/request-payment.ts',
  'functions/payments/resolve-payment.ts',
  'functions/payments/cancel-payment.ts',
];
const API_KEY_READERS = [
  'functions/payments/create-payment.ts',
  'functions/payments/request-payment.ts',
  'functions/payments/resolve-payment.ts',
  'functions/payments/cancel-payment.ts',
  'functions/payments/customer-payment.ts',
  'functions/payments/refund-charge.ts',
];
const WEBHOOK = 'functions/payments/stripe-webhook.ts';

describe('least privilege', () => {
  let template: Template;
  let functions: Map<string, [string, Resource]>;
  beforeAll(() => {
    template = synth();
    functions = functionsOf(template);
  });

  it('no policy in the stack allows a wildcard action', () => {
    for (const [id, policy] of resourcesOf(template, 'AWS::IAM::Policy')) {
      for (const action of actionsOf(
        (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement,
      ))
        expect(action, id).not.toMatch(/\*/);
    }
  });

  it("every function has a role of its own, with no managed policy, that writes only to the function's log group", () => {
    const roles = new Set<string>();
    for (const [entry, [, fn]] of functions) {
      const roleId = roleOf(fn);
      expect(roles.has(roleId), entry).toBe(false);
      roles.add(roleId);
      const role = template.toJSON().Resources[roleId] as Resource;
      expect(role.Properties.ManagedPolicyArns, entry).toBeUndefined();
      const logGroup = (fn.Properties.LoggingConfig as { LogGroup: { Ref: string } }).LogGroup.Ref;
      expect(targetsOf(statementsOf(template, roleId), 'logs:PutLogEvents'), entry).toEqual([
        JSON.stringify({ 'Fn::GetAtt': [logGroup, 'Arn'] }),
      ]);
    }
  });

  it('the payment steps read the API key and nothing else of Stripe; the webhook reads the signing secret only', () => {
    const secretsRead = (entry: string) =>
      targetsOf(statementsOf(template, roleOf(functions.get(entry)![1])), 'secretsmanager:GetSecretValue');
    for (const entry of API_KEY_READERS)
      expect(secretsRead(entry), entry).toEqual([JSON.stringify({ Ref: 'StripeApiKeySecretArn' })]);
    expect(secretsRead(WEBHOOK)).toEqual([JSON.stringify({ Ref: 'StripeWebhookSecretArn' })]);
    for (const [entry] of functions) {
      if (API_KEY_READERS.includes(entry) || entry === WEBHOOK) continue;
      expect(secretsRead(entry), entry).toEqual([]);
    }
  });

  it('the webhook refunds through the refund function, which it alone may invoke', () => {
    const [, webhook] = functions.get(WEBHOOK)!;
    const [refundId] = functions.get('functions/payments/refund-charge.ts')!;
    const refund = { 'Fn::GetAtt': [refundId, 'Arn'] };
    expect(targetsOf(statementsOf(template, roleOf(webhook)), 'lambda:InvokeFunction')).toEqual([
      JSON.stringify(refund),
    ]);
    expect((webhook.Properties.Environment as { Variables: Json }).Variables.REFUND_FUNCTION_NAME).toEqual(
      refund,
    );
    for (const [entry, [, fn]] of functions) {
      if (entry === WEBHOOK) continue;
      expect(targetsOf(statementsOf(template, roleOf(fn)), 'lambda:InvokeFunction'), entry).not.toContain(
        JSON.stringify(refund),
      );
    }
  });

  it('a function may act on "*" only where AWS has no resource to name: X-Ray, and a stream reader listing streams', () => {
    for (const [entry, [, fn]] of functions) {
      const onAnything = statementsOf(template, roleOf(fn))
        .filter((statement) => ([] as unknown[]).concat(statement.Resource).includes('*'))
        .flatMap((statement) => ([] as string[]).concat(statement.Action));
      const allowed = ['xray:PutTraceSegments', 'xray:PutTelemetryRecords', 'dynamodb:ListStreams'];
      for (const action of onAnything) expect(allowed, `${entry}: ${action} on *`).toContain(action);
    }
  });

  it('each function may touch its own table and only the indexes it queries; readers cannot write', () => {
    const tableOf = (name: string) =>
      resourcesOf(template, 'AWS::DynamoDB::Table').find(([id]) => id.startsWith(name))![0];
    const arn = (table: string) => JSON.stringify({ 'Fn::GetAtt': [table, 'Arn'] });
    const index = (table: string, name: string) =>
      JSON.stringify({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [table, 'Arn'] }, `/index/${name}`]] });
    const inventory = tableOf('InventoryTable');
    const payments = tableOf('PaymentsTable');
    const queried = {
      'functions/inventory/list-products.ts': [arn(inventory), index(inventory, PRODUCTS_BY_SKU_INDEX)],
      'functions/inventory/sweep-reservations.ts': [arn(inventory), index(inventory, ACTIVE_BY_EXPIRY_INDEX)],
      'functions/inventory/list-reservations.ts': [
        arn(inventory),
        index(inventory, RESERVATIONS_BY_SKU_INDEX),
      ],
      [WEBHOOK]: [arn(payments), index(payments, BY_PAYMENT_INTENT_INDEX)],
      'functions/inventory/reserve-stock.ts': [arn(inventory)],
      'functions/payments/create-payment.ts': [arn(payments)],
      'functions/payments/refund-charge.ts': [],
      'functions/bridge/publish-events.ts': [],
    };
    for (const [entry, expected] of Object.entries(queried)) {
      const statements = statementsOf(template, roleOf(functions.get(entry)![1]));
      expect(new Set(targetsOf(statements, 'dynamodb:Query')), entry).toEqual(new Set(expected));
      expect(actionsOf(statements), entry).not.toContain('dynamodb:Scan');
    }
    for (const reader of [
      'functions/orders/get-order.ts',
      'functions/inventory/get-product.ts',
      'functions/inventory/list-products.ts',
      'functions/inventory/list-reservations.ts',
      'functions/orders/start-sagas.ts',
    ]) {
      const actions = actionsOf(statementsOf(template, roleOf(functions.get(reader)![1])));
      for (const write of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'])
        expect(actions, reader).not.toContain(write);
    }
  });

  it('grants kms:Decrypt on a customer-managed key, through Secrets Manager only, to the secret readers alone', () => {
    const none = synth();
    for (const [entry, [, fn]] of functionsOf(none))
      expect(actionsOf(statementsOf(none, roleOf(fn))), entry).not.toContain('kms:Decrypt');

    const key = 'arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab';
    const withKey = synth({
      secretsKmsKeyArn: key,
      natsSecretArn: 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:nats-AbCdEf',
    });
    const readers = new Set([...API_KEY_READERS, WEBHOOK, 'functions/bridge/publish-events.ts']);
    for (const [entry, [, fn]] of functionsOf(withKey)) {
      const decrypt = statementsOf(withKey, roleOf(fn)).filter((s) =>
        ([] as string[]).concat(s.Action).includes('kms:Decrypt'),
      );
      if (!readers.has(entry)) {
        expect(decrypt, entry).toEqual([]);
        continue;
      }
      expect(JSON.stringify(decrypt), entry).toContain('secretsmanager.');
      expect(JSON.stringify(decrypt), entry).toContain('secretsmanager.');
      expect(decrypt, entry).toEqual([
        expect.objectContaining({
          Resource: key,
          Condition: {
            StringEquals: { 'kms:ViaService': expect.anything() as unknown },
          },
        }),
      ]);
    }
  });
});

describe('blast radius', () => {
  let template: Template;
  let functions: Map<string, [string, Resource]>;
  beforeAll(() => {
    template = synth();
    functions = functionsOf(template);
  });

  it('reserves concurrency for each saga task and for the webhook, so a flood of one cannot starve the other', () => {
    for (const entry of TASKS)
      expect(functions.get(entry)![1].Properties.ReservedConcurrentExecutions, entry).toBe(
        DEFAULT_CONCURRENCY.tasks,
      );
    expect(functions.get(WEBHOOK)![1].Properties.ReservedConcurrentExecutions).toBe(
      DEFAULT_CONCURRENCY.webhook,
    );
    expect(
      functions.get('functions/orders/create-order.ts')![1].Properties.ReservedConcurrentExecutions,
    ).toBeUndefined();

    const tuned = functionsOf(synth({ taskConcurrency: '10', webhookConcurrency: 'off' }));
    expect(tuned.get(TASKS[0]!)![1].Properties.ReservedConcurrentExecutions).toBe(10);
    expect(tuned.get(WEBHOOK)![1].Properties.ReservedConcurrentExecutions).toBeUndefined();
    expect(() => synth({ taskConcurrency: 'lots' })).toThrow(/taskConcurrency/);
  });

  it('throttles every route of the API, and the open webhook route tighter', () => {
    const [[, stage] = []] = resourcesOf(template, 'AWS::ApiGatewayV2::Stage');
    expect(stage!.Properties.DefaultRouteSettings).toMatchObject({
      ThrottlingRateLimit: DEFAULT_THROTTLE.api.rateLimit,
      ThrottlingBurstLimit: DEFAULT_THROTTLE.api.burstLimit,
    });
    expect(stage!.Properties.RouteSettings).toEqual({
      'POST /payments/webhook': {
        ThrottlingRateLimit: DEFAULT_THROTTLE.webhook.rateLimit,
        ThrottlingBurstLimit: DEFAULT_THROTTLE.webhook.burstLimit,
      },
    });
    const access = stage!.Properties.AccessLogSettings as { DestinationArn: unknown; Format: string };
    expect(access.DestinationArn).toBeDefined();
    expect(JSON.parse(access.Format)).toMatchObject({
      status: '$context.status',
      routeKey: '$context.routeKey',
    });
  });

  it('traces every function and the state machine; the state machine logs every state, without execution data', () => {
    for (const [entry, [, fn]] of functions)
      expect(fn.Properties.TracingConfig, entry).toEqual({ Mode: 'Active' });
    const [[, machine] = []] = resourcesOf(template, 'AWS::StepFunctions::StateMachine');
    expect(machine!.Properties.TracingConfiguration).toEqual({ Enabled: true });
    expect(machine!.Properties.LoggingConfiguration).toMatchObject({
      Level: 'ALL',
      IncludeExecutionData: false,
    });
  });

  it('traces keep neither responses (client secrets) nor errors', () => {
    for (const [entry, [, fn]] of functions) {
      const variables = (fn.Properties.Environment as { Variables: Json }).Variables;
      expect(variables.POWERTOOLS_TRACER_CAPTURE_RESPONSE, entry).toBe('false');
      expect(variables.POWERTOOLS_TRACER_CAPTURE_ERROR, entry).toBe('false');
    }
  });
});

describe('stages', () => {
  it('production by default: the stack is OrderSaga, keeps its tables, recovers them to a point in time, keeps logs 3 months', () => {
    const template = synth();
    for (const [id, table] of resourcesOf(template, 'AWS::DynamoDB::Table')) {
      expect(table.DeletionPolicy, id).toBe('Retain');
      expect(table.Properties.PointInTimeRecoverySpecification, id).toEqual({
        PointInTimeRecoveryEnabled: true,
      });
    }
    const logGroups = resourcesOf(template, 'AWS::Logs::LogGroup');
    expect(logGroups.length).toBeGreaterThanOrEqual(20);
    for (const [id, group] of logGroups) {
      expect(group.Properties.RetentionInDays, id).toBe(90);
      expect(group.DeletionPolicy, id).toBe('Retain');
    }
    expect(template.toJSON().Outputs).toHaveProperty('Stage', expect.objectContaining({ Value: 'prod' }));
  });

  it('another stage is a stack of its own that cleans up after itself (point-in-time recovery stays on: nag DDB3)', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [], stage: 'pr-42' } });
    const { stack } = buildApp(app, {});
    expect(stack.stackName).toBe('OrderSaga-pr-42');
    const template = Template.fromStack(stack);
    for (const [id, table] of resourcesOf(template, 'AWS::DynamoDB::Table')) {
      expect(table.DeletionPolicy, id).toBe('Delete');
    }
    for (const [id, group] of resourcesOf(template, 'AWS::Logs::LogGroup')) {
      expect(group.Properties.RetentionInDays, id).toBe(7);
      expect(group.DeletionPolicy, id).toBe('Delete');
    }
  });

  it('staging keeps its data; any stage can be told to, or not to', () => {
    const retained = (context: Json) =>
      resourcesOf(synth(context), 'AWS::DynamoDB::Table').every(([, t]) => t.DeletionPolicy === 'Retain');
    expect(retained({ stage: 'staging' })).toBe(true);
    expect(retained({ stage: 'dev', ephemeral: 'false' })).toBe(true);
    expect(retained({ stage: 'prod', ephemeral: 'true' })).toBe(false);
  });

  it('refuses a stage name that cannot be part of a stack name, and context it does not know how to read', () => {
    expect(() => synth({ stage: 'Prod_1' })).toThrow(/stage "Prod_1"/);
    expect(() => synth({ ephemeral: 'yes' })).toThrow(/ephemeral/);
    expect(() => synth({ jwtIssuer: 'https://issuer.example.com/' })).toThrow(/jwtIssuer and jwtAudience/);
  });

  it('outputs what the end-to-end suite, reconcile and saga:redrive read, and where alarms go', () => {
    const outputs = Object.keys(synth().toJSON().Outputs as Json);
    expect(outputs).toEqual(
      expect.arrayContaining([
        'StateMachineArn',
        'OrdersTableName',
        'InventoryTableName',
        'PaymentsTableName',
        'AlarmTopicArn',
        'DashboardName',
        'Stage',
      ]),
    );
    expect(outputs.some((name) => /^HttpUrl/.test(name))).toBe(true);
  });
});
