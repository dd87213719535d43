import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { PAYMENT_WAIT_FAULTS, RETRY, STEP_OUTCOMES, TASK_COMMANDS, TASK_FAULTS } from '../shared/saga.ts';
import { METRICS_NAMESPACE, Metric } from '../shared/metric-names.ts';
import { API_5XX_ALARM, COMPENSATION_RATE_ALARM_PERCENT, COMPENSATION_RATE_MIN_ORDERS } from './alarms.ts';
import { buildApp } from './app.ts';
import { ENTRY_METADATA } from './service-function.ts';

type Json = Record<string, unknown>;
interface Resource {
  Type: string;
  Properties: Json;
  Metadata?: Json;
}
interface State extends Json {
  Type: string;
  Next?: string;
  End?: boolean;
  Resource?: string;
  TimeoutSeconds?: number;
  Parameters?: Json;
  Catch?: Array<{ ErrorEquals: string[]; Next: string; ResultPath?: string }>;
  Retry?: Array<{
    ErrorEquals: string[];
    MaxAttempts?: number;
    MaxDelaySeconds?: number;
    JitterStrategy?: string;
  }>;
  QueryLanguage?: string;
}
interface Definition {
  StartAt: string;
  States: Record<string, State>;
  QueryLanguage?: string;
}

/** Synthesizes the stack without bundling (fast): the template is the same apart from asset hashes. */
function synth(env: NodeJS.ProcessEnv = {}, context: Json = {}): Template {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [], ...context } });
  return Template.fromStack(buildApp(app, env).stack);
}

function resources(template: Template, type: string): Array<[string, Resource]> {
  return Object.entries(template.findResources(type) as Record<string, Resource>);
}

/**
 * The state machine's ASL. DefinitionString is an Fn::Join of literal JSON and tokens; tokens become
 * readable placeholders (`<version:LogicalId>` for a published version's ARN, `<fn:LogicalId>` for
 * a function's, `aws` for the partition).
 */
function definitionOf(template: Template): Definition {
  const [[, machine] = []] = resources(template, 'AWS::StepFunctions::StateMachine');
  const join = (machine?.Properties.DefinitionString as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  const types = template.toJSON().Resources as Record<string, Resource>;
  const text = join[1]
    .map((part) => {
      if (typeof part === 'string') return part;
      const token = part as { Ref?: string; 'Fn::GetAtt'?: [string, string] };
      if (token.Ref === 'AWS::Partition') return 'aws';
      if (token.Ref && types[token.Ref]?.Type === 'AWS::Lambda::Version') return `<version:${token.Ref}>`;
      if (token['Fn::GetAtt']?.[1] === 'Arn') return `<fn:${token['Fn::GetAtt'][0]}>`;
      return `<token:${JSON.stringify(token).replaceAll('"', "'")}>`;
    })
    .join(join[0]);
  return JSON.parse(text) as Definition;
}

/** The function a published version belongs to. */
function functionOfVersion(template: Template, versionId: string): string | undefined {
  const version = (template.toJSON().Resources as Record<string, Resource>)[versionId];
  return (version?.Properties.FunctionName as { Ref?: string } | undefined)?.Ref;
}

/** The source file of the function a Task invokes, from the function's entry metadata. */
function entryInvokedBy(template: Template, state: State): string | undefined {
  const target = (
    /^<(fn|version):/.test(state.Resource ?? '') ? state.Resource : state.Parameters?.FunctionName
  ) as string;
  const version = /^<version:(.+)>$/.exec(target)?.[1];
  const logicalId = version ? functionOfVersion(template, version) : /^<fn:(.+)>$/.exec(target)?.[1];
  const fn = resources(template, 'AWS::Lambda::Function').find(([id]) => id === logicalId)?.[1];
  return fn?.Metadata?.[ENTRY_METADATA] as string | undefined;
}

function functionIdFor(template: Template, entry: string): string {
  const found = resources(template, 'AWS::Lambda::Function').find(
    ([, fn]) => fn.Metadata?.[ENTRY_METADATA] === entry,
  );
  if (!found) throw new Error(`no function for ${entry}`);
  return found[0];
}

function roleIdOf(template: Template, functionId: string): string {
  const fn = template.toJSON().Resources[functionId] as Resource;
  return (fn.Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
}

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}

/** Every statement of every inline policy attached to the role. */
function statementsOf(template: Template, roleId: string): Statement[] {
  return resources(template, 'AWS::IAM::Policy')
    .filter(([, policy]) => (policy.Properties.Roles as Json[]).some((role) => role.Ref === roleId))
    .flatMap(([, policy]) => (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

function allows(statements: Statement[], action: string, resource: unknown): boolean {
  return statements.some((statement) => {
    const actions = ([] as string[]).concat(statement.Action);
    const targets = ([] as unknown[]).concat(statement.Resource);
    return (
      statement.Effect === 'Allow' &&
      actions.includes(action) &&
      targets.some((target) => JSON.stringify(target) === JSON.stringify(resource))
    );
  });
}

/** The states a happy order enters, in order: each is one billed state transition. */
const HAPPY_PATH = [
  'ReserveStock',
  'CreatePayment',
  'MarkPaymentPending',
  'RequestPayment',
  'ConfirmStock',
  'CompleteOrder',
];
const COMPENSATION_CHAIN = ['MarkCompensating', 'ReleaseStock', 'CancelPayment', 'MarkCompensated'];

describe('OrderSagaStack (defaults)', () => {
  let template: Template;
  let definition: Definition;
  let stateMachineId: string;

  beforeAll(() => {
    template = synth();
    definition = definitionOf(template);
    stateMachineId = resources(template, 'AWS::StepFunctions::StateMachine')[0]![0];
  });

  describe('tables', () => {
    it('has one table per service: on demand, streaming new and old images, TTL on expiresAt', () => {
      template.resourceCountIs('AWS::DynamoDB::Table', 3);
      for (const [id, table] of resources(template, 'AWS::DynamoDB::Table')) {
        expect(table.Properties, id).toMatchObject({
          BillingMode: 'PAY_PER_REQUEST',
          StreamSpecification: { StreamViewType: 'NEW_AND_OLD_IMAGES' },
          TimeToLiveSpecification: { AttributeName: 'expiresAt', Enabled: true },
          KeySchema: [
            { AttributeName: 'pk', KeyType: 'HASH' },
            { AttributeName: 'sk', KeyType: 'RANGE' },
          ],
        });
      }
    });

    it('the inventory table indexes active reservations by expiry, reservation lines by SKU, and products by SKU', () => {
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        GlobalSecondaryIndexes: [
          Match.objectLike({
            IndexName: 'active-by-expiry',
            KeySchema: [
              { AttributeName: 'activeShard', KeyType: 'HASH' },
              { AttributeName: 'activeUntil', KeyType: 'RANGE' },
            ],
          }),
          Match.objectLike({
            IndexName: 'reservations-by-sku',
            KeySchema: [
              { AttributeName: 'lineSku', KeyType: 'HASH' },
              { AttributeName: 'lineSort', KeyType: 'RANGE' },
            ],
            Projection: {
              ProjectionType: 'INCLUDE',
              NonKeyAttributes: Match.arrayWith(['orderId', 'sku', 'quantity', 'status', 'holdUntil']),
            },
          }),
          Match.objectLike({
            IndexName: 'products-by-sku',
            KeySchema: [
              { AttributeName: 'catalogue', KeyType: 'HASH' },
              { AttributeName: 'sku', KeyType: 'RANGE' },
            ],
            // Nothing that stock moves change: reserving, selling and releasing never write it.
            Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: ['kind'] },
          }),
        ],
        AttributeDefinitions: Match.arrayWith([{ AttributeName: 'activeUntil', AttributeType: 'N' }]),
      });
    });

    it('the payments table indexes payments by PaymentIntent', () => {
      template.hasResourceProperties('AWS::DynamoDB::Table', {
        GlobalSecondaryIndexes: [
          Match.objectLike({
            IndexName: 'by-payment-intent',
            KeySchema: [{ AttributeName: 'paymentIntentId', KeyType: 'HASH' }],
          }),
        ],
      });
    });
  });

  describe('functions', () => {
    it('every service function runs Node.js 24 on arm64', () => {
      const services = resources(template, 'AWS::Lambda::Function').filter(
        ([, fn]) => fn.Metadata?.[ENTRY_METADATA],
      );
      expect(services.length).toBeGreaterThanOrEqual(13);
      for (const [id, fn] of services) {
        expect(fn.Properties.Runtime, id).toBe('nodejs24.x');
        expect(fn.Properties.Architectures, id).toEqual(['arm64']);
      }
    });

    it('wires deploy-time parameters and the state machine into the functions that need them', () => {
      const environmentOf = (entry: string) =>
        (template.toJSON().Resources[functionIdFor(template, entry)] as Resource).Properties.Environment as {
          Variables: Json;
        };
      expect(environmentOf('functions/bridge/publish-events.ts').Variables.NATS_URL).toEqual({
        Ref: 'NatsUrl',
      });
      for (const entry of [
        'create-payment',
        'request-payment',
        'resolve-payment',
        'cancel-payment',
        'customer-payment',
        'refund-charge',
      ]) {
        const variables = environmentOf(`functions/payments/${entry}.ts`).Variables;
        expect(variables.STRIPE_API_KEY_SECRET_ARN, entry).toEqual({ Ref: 'StripeApiKeySecretArn' });
        expect(variables.STRIPE_WEBHOOK_SECRET_ARN, entry).toBeUndefined();
      }
      const webhook = environmentOf('functions/payments/stripe-webhook.ts').Variables;
      expect(webhook.STRIPE_WEBHOOK_SECRET_ARN).toEqual({ Ref: 'StripeWebhookSecretArn' });
      expect(webhook.STRIPE_API_KEY_SECRET_ARN).toBeUndefined();
      expect(environmentOf('functions/orders/create-order.ts').Variables.STATE_MACHINE_ARN).toEqual({
        Ref: stateMachineId,
      });
    });
  });

  it('takes the NATS URL and the two Stripe secrets as CloudFormation parameters', () => {
    template.hasParameter('NatsUrl', { Type: 'String' });
    template.hasParameter('StripeApiKeySecretArn', { Type: 'String', NoEcho: true });
    template.hasParameter('StripeWebhookSecretArn', { Type: 'String', NoEcho: true });
  });

  describe('saga state machine', () => {
    it('is a STANDARD workflow', () => {
      template.resourceCountIs('AWS::StepFunctions::StateMachine', 1);
      template.hasResourceProperties('AWS::StepFunctions::StateMachine', { StateMachineType: 'STANDARD' });
    });

    it('uses JSONPath throughout, never JSONata', () => {
      expect(definition.QueryLanguage ?? 'JSONPath').toBe('JSONPath');
      for (const [name, state] of Object.entries(definition.States)) {
        expect(state.QueryLanguage ?? 'JSONPath', name).toBe('JSONPath');
      }
    });

    it('starts by reserving stock', () => {
      expect(definition.StartAt).toBe('ReserveStock');
    });

    it('runs the forward steps in order, each invoking its own function, and ends with CompleteOrder', () => {
      const states = definition.States;
      expect(HAPPY_PATH.map((name) => states[name]?.Next)).toEqual([...HAPPY_PATH.slice(1), undefined]);
      expect(states.CompleteOrder?.End).toBe(true);
      expect(states.RequestPayment?.Catch).toContainEqual(
        expect.objectContaining({ ErrorEquals: ['States.Timeout'], Next: 'ResolvePayment' }),
      );
      expect(states.ResolvePayment?.Next).toBe('ConfirmStock');

      const entries = Object.fromEntries(
        [...HAPPY_PATH, 'ResolvePayment', ...COMPENSATION_CHAIN].map((name) => [
          name,
          entryInvokedBy(template, states[name]!),
        ]),
      );
      expect(entries).toEqual({
        ReserveStock: 'functions/inventory/reserve-stock.ts',
        CreatePayment: 'functions/payments/create-payment.ts',
        MarkPaymentPending: 'functions/orders/saga-step.ts',
        RequestPayment: 'functions/payments/request-payment.ts',
        ResolvePayment: 'functions/payments/resolve-payment.ts',
        ConfirmStock: 'functions/inventory/confirm-stock.ts',
        CompleteOrder: 'functions/orders/saga-step.ts',
        MarkCompensating: 'functions/orders/saga-step.ts',
        CancelPayment: 'functions/payments/cancel-payment.ts',
        ReleaseStock: 'functions/inventory/release-stock.ts',
        MarkCompensated: 'functions/orders/saga-step.ts',
      });
    });

    it('a happy order costs six state transitions: no Pass, Choice, Succeed or Fail state', () => {
      // Standard workflows bill each state entered; the happy path enters exactly these.
      const happy: string[] = [];
      for (let name: string | undefined = definition.StartAt; name; name = definition.States[name]?.Next) {
        happy.push(name);
      }
      expect(happy).toEqual(HAPPY_PATH);
      expect(happy.length).toBeLessThanOrEqual(6);
      const types = new Set(Object.values(definition.States).map((state) => state.Type));
      expect([...types]).toEqual(['Task']);
    });

    it('creates the PaymentIntent before the order shows PAYMENT_PENDING, and hands the order what it answered', () => {
      const create = definition.States.CreatePayment!;
      expect(create.Parameters).toEqual({
        'orderId.$': '$.orderId',
        'customerId.$': '$.customerId',
        'amount.$': '$.reservation.amount',
        'currency.$': '$.reservation.currency',
      });
      expect(create.ResultPath).toBe('$.paymentIntent');
      // Stock reserved and payment pending: the order's two steps in one write.
      expect(definition.States.MarkPaymentPending?.Parameters).toEqual({
        step: 'PAYMENT_PENDING',
        'orderId.$': '$.orderId',
        reservation: {
          'amount.$': '$.reservation.amount',
          'currency.$': '$.reservation.currency',
          'items.$': '$.reservation.items',
        },
        'payment.$': '$.paymentIntent',
      });
    });

    it('waits for the payment outcome with a task token, for PAYMENT_TIMEOUT_SECONDS (30 by default)', () => {
      const payment = definition.States.RequestPayment!;
      expect(payment.Type).toBe('Task');
      expect(payment.Resource).toBe('arn:aws:states:::lambda:invoke.waitForTaskToken');
      expect(payment.TimeoutSeconds).toBe(30);
      expect(payment.Parameters?.Payload).toMatchObject({
        'taskToken.$': '$$.Task.Token',
        'orderId.$': '$.orderId',
        'amount.$': '$.reservation.amount',
        'currency.$': '$.reservation.currency',
      });
    });

    it('the payment timeout asks Stripe (ResolvePayment) instead of compensating at once', () => {
      const payment = definition.States.RequestPayment!;
      expect(payment.Retry?.flatMap((retrier) => retrier.ErrorEquals)).not.toContain('States.Timeout');
      expect(payment.Catch).toContainEqual({
        ErrorEquals: ['States.Timeout'],
        Next: 'ResolvePayment',
        ResultPath: '$.failure',
      });
      expect(definition.States.ResolvePayment?.Catch).toEqual([
        expect.objectContaining({
          ErrorEquals: [...STEP_OUTCOMES.ResolvePayment],
          Next: 'MarkCompensating',
          ResultPath: '$.failure',
        }),
      ]);
    });

    it("sends every task exactly its command schema's fields (one saga contract, shared/saga.ts)", () => {
      const tasks = Object.entries(definition.States).filter(([, state]) => state.Type === 'Task');
      expect(tasks.map(([name]) => name).sort()).toEqual(Object.keys(TASK_COMMANDS).sort());
      for (const [name, state] of tasks) {
        const parameters = (
          name === 'RequestPayment' ? state.Parameters?.Payload : state.Parameters
        ) as Record<string, unknown>;
        const sent = Object.keys(parameters).map((key) => key.replace(/\.\$$/, ''));
        let schema: z.ZodType = TASK_COMMANDS[name as keyof typeof TASK_COMMANDS];
        if (schema instanceof z.ZodDiscriminatedUnion) {
          const step = parameters.step;
          schema = (schema.options as z.ZodObject[]).find(
            (option) => (option.shape.step as z.ZodLiteral).value === step,
          )!;
          expect(schema, `${name}: step ${String(step)}`).toBeDefined();
        }
        const shape = (schema as z.ZodObject).shape;
        const required = Object.keys(shape).filter((key) => !shape[key]!.safeParse(undefined).success);
        expect(
          sent.filter((key) => !(key in shape)),
          `${name} sends fields its schema lacks`,
        ).toEqual([]);
        expect(
          required.filter((key) => !sent.includes(key)),
          `${name} misses required fields`,
        ).toEqual([]);
      }
    });

    it('every Task has a timeout', () => {
      const tasks = Object.entries(definition.States).filter(([, state]) => state.Type === 'Task');
      expect(tasks.map(([name]) => name).sort()).toEqual(
        [...HAPPY_PATH, 'ResolvePayment', ...COMPENSATION_CHAIN].sort(),
      );
      for (const [name, state] of tasks) {
        expect(state.TimeoutSeconds, name).toBeGreaterThan(0);
      }
    });

    it('every task retries the faults (Lambda, DynamoDB, Stripe) with full jitter and a capped delay', () => {
      for (const [name, state] of Object.entries(definition.States)) {
        const faults = name === 'RequestPayment' ? PAYMENT_WAIT_FAULTS : TASK_FAULTS;
        expect(state.Retry, name).toEqual([
          expect.objectContaining({ ErrorEquals: [...faults], JitterStrategy: 'FULL' }),
        ]);
        expect(state.Retry?.[0]?.MaxDelaySeconds, name).toBeGreaterThan(0);
        for (const fault of ['Lambda.TooManyRequestsException', 'Sandbox.Timedout', 'Lambda.Unknown'])
          expect(state.Retry?.[0]?.ErrorEquals, name).toContain(fault);
      }
    });

    it('before money, anything that outlasts its retries compensates (PROCESSING_ERROR unless an outcome)', () => {
      for (const name of ['ReserveStock', 'CreatePayment']) {
        const state = definition.States[name]!;
        expect(state.Retry?.[0]).toMatchObject({ MaxAttempts: RETRY.beforeMoney.maxAttempts });
        expect(state.Catch, name).toEqual([
          { ErrorEquals: ['States.ALL'], Next: 'MarkCompensating', ResultPath: '$.failure' },
        ]);
      }
    });

    it('after money may have moved, only outcomes compensate; faults retry for hours, then fail the execution', () => {
      const outcomes: Record<string, readonly string[]> = { ...STEP_OUTCOMES, CompleteOrder: [] };
      for (const [name, expected] of Object.entries(outcomes)) {
        const state = definition.States[name]!;
        expect(state.Retry?.[0], name).toMatchObject({ MaxAttempts: RETRY.afterMoney.maxAttempts });
        const compensating = (state.Catch ?? []).filter((c) => c.Next === 'MarkCompensating');
        expect(compensating.flatMap((c) => c.ErrorEquals).sort(), name).toEqual([...expected].sort());
        expect(JSON.stringify(state.Catch ?? []), name).not.toContain('States.ALL');
      }
      // Retried for hours: the budget's upper bound, full jitter below it.
      const { intervalSeconds, backoffRate, maxDelaySeconds, maxAttempts } = RETRY.afterMoney;
      let total = 0;
      for (let attempt = 0; attempt < maxAttempts; attempt++)
        total += Math.min(maxDelaySeconds, intervalSeconds * backoffRate ** attempt);
      expect(total / 3600).toBeGreaterThan(3);
    });

    it('compensates in order: mark compensating, release stock, cancel payment, mark compensated', () => {
      const chain = ['MarkCompensating'];
      let next = definition.States.MarkCompensating?.Next;
      while (next) {
        chain.push(next);
        next = definition.States[next]?.Next;
      }
      expect(chain).toEqual(COMPENSATION_CHAIN);
      expect(definition.States.MarkCompensated?.End).toBe(true);
    });

    it.each(COMPENSATION_CHAIN)(
      '%s retries faults for hours and otherwise fails the execution, for an operator to redrive',
      (name) => {
        const state = definition.States[name]!;
        expect(state.Catch).toBeUndefined();
        expect(state.Retry?.[0]).toMatchObject({ MaxAttempts: RETRY.afterMoney.maxAttempts });
        // A deterministic error (stock already sold, say) is not repeated for nothing.
        expect(state.Retry?.[0]?.ErrorEquals).not.toContain('States.ALL');
      },
    );

    it('every state but the final ones leads somewhere that exists', () => {
      const names = new Set(Object.keys(definition.States));
      for (const [name, state] of Object.entries(definition.States)) {
        const targets = [state.Next, ...(state.Catch ?? []).map((c) => c.Next)].filter(Boolean) as string[];
        for (const target of targets) expect(names.has(target), `${name} → ${target}`).toBe(true);
        if (state.Type === 'Task') {
          expect(state.Next ?? state.End, name).toBeTruthy();
        }
      }
    });
  });

  describe('outbox bridge', () => {
    it('reads all three table streams, outbox inserts only, reporting partial failures to a dead-letter queue', () => {
      const bridgeId = functionIdFor(template, 'functions/bridge/publish-events.ts');
      const mappings = resources(template, 'AWS::Lambda::EventSourceMapping').filter(
        ([, m]) => JSON.stringify(m.Properties.FunctionName) === JSON.stringify({ Ref: bridgeId }),
      );
      expect(mappings).toHaveLength(3);
      const tableIds = resources(template, 'AWS::DynamoDB::Table').map(([id]) => id);
      const queueIds = resources(template, 'AWS::SQS::Queue').map(([id]) => id);
      const streams = mappings.map(
        ([, m]) => (m.Properties.EventSourceArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'],
      );
      expect(streams.map(([id, attribute]) => [id, attribute]).sort()).toEqual(
        tableIds.map((id) => [id, 'StreamArn']).sort(),
      );
      for (const [id, mapping] of mappings) {
        const properties = mapping.Properties;
        expect(properties.FunctionResponseTypes, id).toEqual(['ReportBatchItemFailures']);
        const filters = (properties.FilterCriteria as { Filters: Array<{ Pattern: string }> }).Filters;
        expect(
          filters.map((filter) => JSON.parse(filter.Pattern)),
          id,
        ).toEqual([{ eventName: ['INSERT'], dynamodb: { NewImage: { kind: { S: ['event'] } } } }]);
        expect(properties.DestinationConfig, id).toEqual({
          OnFailure: {
            Destination: { 'Fn::GetAtt': [expect.toSatisfy((q: string) => queueIds.includes(q)), 'Arn'] },
          },
        });
      }
    });

    it('every stream reader retries without a count, until a record is an hour from aging out of the stream', () => {
      const mappings = resources(template, 'AWS::Lambda::EventSourceMapping');
      expect(mappings).toHaveLength(5);
      for (const [id, mapping] of mappings) {
        expect(mapping.Properties.MaximumRetryAttempts, id).toBe(-1);
        expect(mapping.Properties.MaximumRecordAgeInSeconds, id).toBe(23 * 3600);
        expect(mapping.Properties.BisectBatchOnFunctionError, id).toBe(false);
      }
    });

    it("alarms when any stream reader's oldest record has waited 5 minutes, long before it would age out", () => {
      const alarmed = resources(template, 'AWS::CloudWatch::Alarm')
        .filter(([, alarm]) => alarm.Properties.MetricName === 'IteratorAge')
        .map(([, alarm]) => {
          expect(alarm.Properties).toMatchObject({
            Namespace: 'AWS/Lambda',
            Statistic: 'Maximum',
            Threshold: 5 * 60 * 1000,
          });
          return JSON.stringify((alarm.Properties.Dimensions as Json[])[0]!.Value);
        });
      const readers = resources(template, 'AWS::Lambda::EventSourceMapping').map(([, mapping]) =>
        JSON.stringify(mapping.Properties.FunctionName),
      );
      expect([...new Set(readers)].sort()).toEqual(alarmed.sort());
      expect(alarmed).toHaveLength(3);
    });

    it('connects with neither credentials nor a secret when no natsSecretArn is given', () => {
      const bridge = template.toJSON().Resources[
        functionIdFor(template, 'functions/bridge/publish-events.ts')
      ] as Resource;
      const { Variables } = bridge.Properties.Environment as { Variables: Json };
      expect(Variables.NATS_SECRET_ARN).toBeUndefined();
    });

    /** The one stream mapping of a function: the table it reads, and its filter patterns. */
    function streamMappingOf(entry: string) {
      const functionId = functionIdFor(template, entry);
      const [[, mapping]] = resources(template, 'AWS::Lambda::EventSourceMapping').filter(
        ([, m]) => JSON.stringify(m.Properties.FunctionName) === JSON.stringify({ Ref: functionId }),
      ) as [[string, Resource]];
      const [tableId] = (mapping.Properties.EventSourceArn as { 'Fn::GetAtt': string[] })['Fn::GetAtt'];
      expect(mapping.Properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
      expect(mapping.Properties.DestinationConfig).toBeDefined();
      const filters = (mapping.Properties.FilterCriteria as { Filters: Array<{ Pattern: string }> }).Filters;
      return { tableId, patterns: filters.map((filter) => JSON.parse(filter.Pattern)) };
    }

    it('starts every committed order.created saga from the orders stream', () => {
      const { tableId, patterns } = streamMappingOf('functions/orders/start-sagas.ts');
      expect(tableId).toMatch(/^Orders/);
      expect(patterns).toEqual([
        {
          eventName: ['INSERT'],
          dynamodb: { NewImage: { kind: { S: ['event'] }, eventType: { S: ['order.created'] } } },
        },
      ]);
    });

    it('the inventory service reacts to its own products and reservations, every kind of change', () => {
      const { tableId, patterns } = streamMappingOf('functions/inventory/track-stock-changes.ts');
      expect(tableId).toMatch(/^Inventory/);
      expect(patterns).toEqual([{ dynamodb: { Keys: { sk: { S: ['PRODUCT', 'RESERVATION'] } } } }]);
    });
  });

  describe('alarms', () => {
    const alarms = () => resources(template, 'AWS::CloudWatch::Alarm');
    const alarmOn = (metricName: string) =>
      alarms().find(([, alarm]) => alarm.Properties.MetricName === metricName)?.[1].Properties;

    it("alarm on one failed webhook delivery, refunded stray charge or failed refund, from the webhook's own metrics", () => {
      expect(resources(template, 'AWS::Logs::MetricFilter')).toEqual([]);
      for (const metric of [Metric.WebhookFailures, Metric.StrayChargesRefunded, Metric.RefundsFailed]) {
        expect(alarmOn(metric), metric).toMatchObject({
          Namespace: `${METRICS_NAMESPACE}/OrderSaga`,
          Dimensions: [{ Name: 'service', Value: 'payments' }],
          Statistic: 'Sum',
          Threshold: 1,
          ComparisonOperator: 'GreaterThanOrEqualToThreshold',
          TreatMissingData: 'notBreaching',
        });
      }
    });

    it('the functions write their metrics to the namespace the alarms read', () => {
      for (const [id, fn] of resources(template, 'AWS::Lambda::Function').filter(
        ([, f]) => f.Metadata?.[ENTRY_METADATA],
      )) {
        const variables = (fn.Properties.Environment as { Variables: Json }).Variables;
        expect(variables.POWERTOOLS_METRICS_NAMESPACE, id).toBe(`${METRICS_NAMESPACE}/OrderSaga`);
      }
    });

    it("alarm on the compensation rate, throttling of the saga and the webhook, and the API's 5xx", () => {
      const byId = Object.fromEntries(alarms().map(([id, alarm]) => [id.replace(/[0-9A-F]{8}$/, ''), alarm]));
      const rate = byId.AlarmsCompensationRate!.Properties;
      expect(rate.Threshold).toBe(COMPENSATION_RATE_ALARM_PERCENT);
      const expressions = (rate.Metrics as Array<{ Expression?: string; MetricStat?: { Metric: Json } }>)
        .map((m) => m.Expression ?? (m.MetricStat!.Metric.MetricName as string))
        .sort();
      expect(expressions).toEqual(
        [
          `IF(placed >= ${COMPENSATION_RATE_MIN_ORDERS}, 100 * (FILL(compensated, 0) - FILL(customers, 0)) / placed, 0)`,
          Metric.OrdersCompensated,
          Metric.OrdersCompensated,
          Metric.OrdersPlaced,
        ].sort(),
      );
      // Customers' own cancels are taken out: the breakdown's CUSTOMER_CANCELLED line.
      const customers = (rate.Metrics as Array<{ Id: string; MetricStat?: { Metric: Json } }>).find(
        (m) => m.Id === 'customers',
      );
      expect(customers?.MetricStat?.Metric.Dimensions).toEqual(
        expect.arrayContaining([
          { Name: 'service', Value: 'orders' },
          { Name: 'reason', Value: 'CUSTOMER_CANCELLED' },
        ]),
      );

      const throttled = byId.AlarmsSagaThrottled!.Properties.Metrics as Array<{
        MetricStat?: { Metric: { MetricName: string; Dimensions?: Array<{ Value: { Ref: string } }> } };
      }>;
      const watched = throttled.flatMap((m) =>
        m.MetricStat?.Metric.MetricName === 'Throttles'
          ? [m.MetricStat.Metric.Dimensions![0]!.Value.Ref]
          : [],
      );
      const expected = [
        ...Object.values(definition.States)
          .filter((state) => state.Type === 'Task')
          .map((state) => entryInvokedBy(template, state)!),
        'functions/payments/stripe-webhook.ts',
      ].map((entry) => functionIdFor(template, entry));
      expect(new Set(watched)).toEqual(new Set(expected));
      expect(throttled.some((m) => m.MetricStat?.Metric.MetricName === 'ExecutionThrottled')).toBe(true);
      // Every term filled with 0: a task nobody called has no point, and a sum with a gap has none.
      const sum = (throttled as Array<{ Expression?: string }>).find((m) => m.Expression)!.Expression!;
      expect(sum.split(' + ').every((term) => /^FILL\(\w+, 0\)$/.test(term))).toBe(true);

      expect(byId.AlarmsApi5xx!.Properties).toMatchObject({ MetricName: '5xx', Threshold: API_5XX_ALARM });
    });

    it('every alarm, and its recovery, goes to the alarm topic', () => {
      const [[topicId] = []] = resources(template, 'AWS::SNS::Topic');
      expect(alarms().length).toBe(13);
      for (const [id, alarm] of alarms()) {
        expect(alarm.Properties.AlarmActions, id).toEqual([{ Ref: topicId }]);
        expect(alarm.Properties.OKActions, id).toEqual([{ Ref: topicId }]);
        expect(alarm.Properties.AlarmDescription, id).toMatch(/docs\/operations\.md#/);
      }
    });

    it('the alarm topic is encrypted with a key CloudWatch may use, and takes the subscriptions the deploy names', () => {
      const [[topicId, topic] = []] = resources(template, 'AWS::SNS::Topic');
      expect(topic!.Properties.KmsMasterKeyId).toBeDefined();
      // enforceSSL's topic policy replaces SNS's default one: CloudWatch must be let in by name.
      const policies = resources(template, 'AWS::SNS::TopicPolicy').filter(([, p]) =>
        JSON.stringify(p.Properties.Topics).includes(topicId!),
      );
      const statements = policies.flatMap(
        ([, p]) => (p.Properties.PolicyDocument as { Statement: Array<Json> }).Statement,
      );
      expect(statements).toContainEqual(
        expect.objectContaining({
          Effect: 'Allow',
          Principal: { Service: 'cloudwatch.amazonaws.com' },
          Action: 'sns:Publish',
        }),
      );
      expect(statements).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
      const [[, key] = []] = resources(template, 'AWS::KMS::Key');
      expect(JSON.stringify(key!.Properties.KeyPolicy)).toContain('cloudwatch.amazonaws.com');
      expect(resources(template, 'AWS::SNS::Subscription')).toEqual([]);
      const subscribed = synth(
        {},
        {
          alarmEmails: 'oncall@example.com, payments@example.com',
          alarmUrls: 'https://pager.example.com/sns',
        },
      );
      const subscriptions = resources(subscribed, 'AWS::SNS::Subscription').map(([, s]) => [
        s.Properties.Protocol,
        s.Properties.Endpoint,
      ]);
      expect(subscriptions).toEqual(
        expect.arrayContaining([
          ['email', 'oncall@example.com'],
          ['email', 'payments@example.com'],
          ['https', 'https://pager.example.com/sns'],
        ]),
      );
      expect(() => synth({}, { alarmEmails: 'not-an-address' })).toThrow(/alarmEmails/);
      expect(() => synth({}, { alarmUrls: 'http://insecure.example.com' })).toThrow(/alarmUrls/);
    });

    it("a dashboard shows the business metrics, the platform's and every alarm", () => {
      const [[, dashboard] = []] = resources(template, 'AWS::CloudWatch::Dashboard');
      const body = JSON.stringify(dashboard!.Properties.DashboardBody);
      for (const metric of Object.values(Metric)) expect(body, metric).toContain(metric);
      for (const platform of ['ExecutionsFailed', 'Throttles', 'IteratorAge', '5xx'])
        expect(body, platform).toContain(platform);
      expect(body).toContain('"type\\":\\"alarm\\"');
    });
  });

  describe('grants', () => {
    it('the payment functions may answer the waiting payment step', () => {
      for (const entry of ['functions/payments/request-payment.ts', 'functions/payments/stripe-webhook.ts']) {
        const statements = statementsOf(template, roleIdOf(template, functionIdFor(template, entry)));
        for (const action of ['states:SendTaskSuccess', 'states:SendTaskFailure']) {
          expect(allows(statements, action, { Ref: stateMachineId }), `${entry} ${action}`).toBe(true);
        }
      }
    });

    it('only the create-order and start-sagas functions may start the saga', () => {
      const starters = ['functions/orders/create-order.ts', 'functions/orders/start-sagas.ts'].map((entry) =>
        functionIdFor(template, entry),
      );
      for (const [id] of resources(template, 'AWS::Lambda::Function')) {
        const statements = statementsOf(template, roleIdOf(template, id));
        const expected = starters.includes(id);
        expect(allows(statements, 'states:StartExecution', { Ref: stateMachineId }), id).toBe(expected);
      }
    });

    it('the state machine invokes published versions, and may invoke its task functions (any version) only', () => {
      const [, machine] = resources(template, 'AWS::StepFunctions::StateMachine')[0]!;
      const roleId = (machine.Properties.RoleArn as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
      const tasks = Object.values(definition.States).filter((state) => state.Type === 'Task');
      const versions = new Set(
        tasks.map(
          (state) => /^<version:(.+)>$/.exec(String(state.Parameters?.FunctionName ?? state.Resource))?.[1],
        ),
      );
      expect(versions.has(undefined)).toBe(false);
      expect(versions.size).toBe(8);
      const invokable = new Set(
        statementsOf(template, roleId)
          .filter((statement) => ([] as string[]).concat(statement.Action).includes('lambda:InvokeFunction'))
          .flatMap((statement) => ([] as unknown[]).concat(statement.Resource))
          .map((resource) => JSON.stringify(resource)),
      );
      // The versions a deploy publishes, and every older one of the same functions: executions
      // started before a deploy (and redrives of them) still call the version they started with.
      const functionIds = [...versions].map((id) => functionOfVersion(template, id!)!);
      expect(invokable).toEqual(
        new Set([
          ...[...versions].map((id) => JSON.stringify({ Ref: id })),
          ...functionIds.map((id) => JSON.stringify({ 'Fn::GetAtt': [id, 'Arn'] })),
          ...functionIds.map((id) =>
            JSON.stringify({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [id, 'Arn'] }, ':*']] }),
          ),
        ]),
      );
      // Versions outlive the deploy that replaced them: executions in flight still call them.
      for (const id of versions) expect(template.toJSON().Resources[id!].DeletionPolicy, id).toBe('Retain');
    });
  });

  describe('HTTP API', () => {
    const routesOf = (t: Template) =>
      Object.fromEntries(
        resources(t, 'AWS::ApiGatewayV2::Route').map(([, route]) => [
          route.Properties.RouteKey as string,
          route.Properties,
        ]),
      );

    it("has the contract's routes", () => {
      expect(Object.keys(routesOf(template)).sort()).toEqual(
        [
          'GET /health',
          'GET /inventory/reservations',
          'GET /products',
          'PUT /products/{sku}',
          'GET /products/{sku}',
          'POST /products/{sku}/stock-adjustments',
          'POST /orders',
          'GET /orders/{orderId}',
          'POST /orders/{orderId}/cancel',
          'POST /payments/webhook',
        ].sort(),
      );
    });

    it('leaves only /health and the webhook open; everything else is authorized', () => {
      for (const [key, route] of Object.entries(routesOf(template))) {
        const open = key === 'GET /health' || key === 'POST /payments/webhook';
        if (open) expect(route.AuthorizationType, key).toBe('NONE');
        else expect(route.AuthorizationType ?? 'NONE', key).not.toBe('NONE');
      }
    });

    it('with a JWT issuer, customers need a token and admin routes need the admin scope', () => {
      const withJwt = synth({}, { jwtIssuer: 'https://issuer.example.com', jwtAudience: 'orders-api' });
      const routes = routesOf(withJwt);
      for (const key of ['POST /orders', 'GET /orders/{orderId}', 'POST /orders/{orderId}/cancel']) {
        expect(routes[key]?.AuthorizationType, key).toBe('JWT');
        expect(routes[key]?.AuthorizationScopes, key).toBeUndefined();
      }
      for (const key of [
        'GET /products',
        'PUT /products/{sku}',
        'GET /products/{sku}',
        'POST /products/{sku}/stock-adjustments',
      ]) {
        expect(routes[key]).toMatchObject({
          AuthorizationType: 'JWT',
          AuthorizationScopes: ['orders/admin'],
        });
      }
      expect(routes['GET /health']?.AuthorizationType).toBe('NONE');
      expect(routes['POST /payments/webhook']?.AuthorizationType).toBe('NONE');
    });

    it("with a JWT issuer, tells the orders routes which tokens are the back office's", () => {
      const withJwt = synth(
        {},
        { jwtIssuer: 'https://issuer.example.com', jwtAudience: 'orders-api', adminScope: 'shop/ops' },
      );
      for (const entry of [
        'functions/orders/create-order.ts',
        'functions/orders/get-order.ts',
        'functions/orders/cancel-order.ts',
      ]) {
        const fn = withJwt.toJSON().Resources[functionIdFor(withJwt, entry)];
        expect(fn.Properties.Environment.Variables.ADMIN_SCOPE, entry).toBe('shop/ops');
      }
      expect(routesOf(withJwt)['PUT /products/{sku}']?.AuthorizationScopes).toEqual(['shop/ops']);
    });
  });

  it('sweeps expired reservations every minute by default', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 minute)',
      Targets: [
        Match.objectLike({
          Arn: {
            'Fn::GetAtt': [functionIdFor(template, 'functions/inventory/sweep-reservations.ts'), 'Arn'],
          },
        }),
      ],
    });
  });
});

describe('OrderSagaStack (configured by environment)', () => {
  let template: Template;

  beforeAll(() => {
    template = synth({ PAYMENT_TIMEOUT_SECONDS: '45', RESERVATION_SWEEP_INTERVAL_SECONDS: '300' });
  });

  it('the payment step waits PAYMENT_TIMEOUT_SECONDS', () => {
    expect(definitionOf(template).States.RequestPayment?.TimeoutSeconds).toBe(45);
  });

  it('the sweeper runs every RESERVATION_SWEEP_INTERVAL_SECONDS, in whole minutes', () => {
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(5 minutes)' });
  });

  it('the sweeper rule carries the interval in seconds in its template Metadata, for the local timer', () => {
    template.hasResource('AWS::Events::Rule', {
      Metadata: { 'order-saga:interval-seconds': 300 },
      Properties: Match.objectLike({ ScheduleExpression: 'rate(5 minutes)' }),
    });
  });

  it('refuses invalid settings instead of falling back to defaults', () => {
    expect(() => synth({ PAYMENT_TIMEOUT_SECONDS: 'soon' })).toThrow(/PAYMENT_TIMEOUT_SECONDS/);
    expect(() => synth({ PAYMENT_TIMEOUT_SECONDS: '0' })).toThrow(/PAYMENT_TIMEOUT_SECONDS/);
  });
});

describe('OrderSagaStack for a LocalStack run', () => {
  it('points only the payment functions at another Stripe API when stripeApiUrl is given', () => {
    const template = synth({}, { stripeApiUrl: 'http://host.docker.internal:12111' });
    const functions = resources(template, 'AWS::Lambda::Function').filter(
      ([, fn]) => typeof fn.Metadata?.['order-saga:entry'] === 'string',
    );
    for (const [id, fn] of functions) {
      const entry = String(fn.Metadata?.['order-saga:entry']);
      const variables = (fn.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)
        ?.Variables;
      // The webhook calls no Stripe API (the refund function refunds for it).
      if (entry.startsWith('functions/payments/') && entry !== 'functions/payments/stripe-webhook.ts') {
        expect(variables?.STRIPE_API_URL, id).toBe('http://host.docker.internal:12111');
      } else {
        expect(variables?.STRIPE_API_URL, id).toBeUndefined();
      }
    }
    const defaults = synth();
    for (const [, fn] of resources(defaults, 'AWS::Lambda::Function')) {
      const variables = (fn.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)
        ?.Variables;
      expect(variables?.STRIPE_API_URL).toBeUndefined();
    }
  });

  it('hands the bridge, and only the bridge, the NATS secret named by natsSecretArn', () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:111111111111:secret:order-saga-nats-AbCdEf';
    const template = synth({}, { natsSecretArn: arn });
    const bridgeId = functionIdFor(template, 'functions/bridge/publish-events.ts');
    for (const [id, fn] of resources(template, 'AWS::Lambda::Function')) {
      const variables = (fn.Properties?.Environment as { Variables?: Record<string, unknown> } | undefined)
        ?.Variables;
      expect(variables?.NATS_SECRET_ARN, id).toBe(id === bridgeId ? arn : undefined);
    }
    const statements = statementsOf(template, roleIdOf(template, bridgeId));
    expect(statements).toContainEqual(
      expect.objectContaining({
        Action: expect.arrayContaining(['secretsmanager:GetSecretValue']),
        Resource: arn,
      }),
    );
  });

  it('outputs the three table names', () => {
    const outputs = synth().toJSON().Outputs as Record<string, unknown>;
    expect(Object.keys(outputs)).toEqual(
      expect.arrayContaining(['OrdersTableName', 'InventoryTableName', 'PaymentsTableName']),
    );
  });
});
