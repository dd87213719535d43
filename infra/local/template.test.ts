import { describe, expect, it } from 'vitest';
import { SCHEDULE_SECONDS_METADATA } from '../../stacks/service-function.ts';
import { readTopology, synthesizeTemplate, type Bindings, type Template } from './template.ts';

/** Enough of the runtime's bindings to read a topology: every ARN is a function ARN named by its id. */
const bindings: Bindings = {
  ref: (id) => id,
  getAtt: (id, attribute) =>
    attribute === 'Arn' ? `arn:aws:lambda:us-east-1:000000000000:function:${id}` : `${id}.${attribute}`,
};

async function sweeperSchedules(env: NodeJS.ProcessEnv) {
  const template = await synthesizeTemplate(env);
  const topology = readTopology(template, bindings);
  const sweeper = topology.functions.find((fn) => fn.entry === 'functions/inventory/sweep-reservations.ts');
  return topology.schedules.filter((schedule) => schedule.functionId === sweeper?.logicalId);
}

/** A template with one state machine (readTopology needs one) and the given schedule rule. */
function templateWithRule(rule: Template['Resources'][string]): Template {
  return {
    Resources: {
      Machine: {
        Type: 'AWS::StepFunctions::StateMachine',
        Properties: { DefinitionString: '{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}' },
      },
      Rule: rule,
    },
  };
}

describe('readTopology schedules', () => {
  it('times the sweeper by RESERVATION_SWEEP_INTERVAL_SECONDS, in seconds, from the synthesized template', async () => {
    expect(await sweeperSchedules({ RESERVATION_SWEEP_INTERVAL_SECONDS: '3' })).toEqual([
      { functionId: expect.any(String), intervalSeconds: 3 },
    ]);
  });

  it('sweeps every 60 s by default', async () => {
    expect(await sweeperSchedules({})).toEqual([{ functionId: expect.any(String), intervalSeconds: 60 }]);
  });

  it("falls back to a rule's rate expression, and refuses a schedule it cannot time", () => {
    const target = { Arn: { 'Fn::GetAtt': ['Sweeper', 'Arn'] } };
    const rate = templateWithRule({
      Type: 'AWS::Events::Rule',
      Properties: { ScheduleExpression: 'rate(5 minutes)', Targets: [target] },
    });
    expect(readTopology(rate, bindings).schedules).toEqual([{ functionId: 'Sweeper', intervalSeconds: 300 }]);

    const seconds = templateWithRule({
      Type: 'AWS::Events::Rule',
      Properties: { ScheduleExpression: 'rate(1 minute)', Targets: [target] },
      Metadata: { [SCHEDULE_SECONDS_METADATA]: 7 },
    });
    expect(readTopology(seconds, bindings).schedules).toEqual([
      { functionId: 'Sweeper', intervalSeconds: 7 },
    ]);

    const cron = templateWithRule({
      Type: 'AWS::Events::Rule',
      Properties: { ScheduleExpression: 'cron(0 12 * * ? *)', Targets: [target] },
    });
    expect(() => readTopology(cron, bindings)).toThrow(/Rule .*interval-seconds/);
  });
});
