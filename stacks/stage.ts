import { RemovalPolicy } from 'aws-cdk-lib';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IConstruct } from 'constructs';

/**
 * What differs between a production stage and a throwaway one. A stage is named at deploy time
 * (`-c stage=<name>`, default `prod`); `prod`, `production` and `staging` keep their data, any other
 * name (`dev`, `pr-123`, `localstack`) is ephemeral unless `-c ephemeral=false` says otherwise.
 */
export interface StageSettings {
  /** `prod` by default; becomes part of the stack name for every other stage. */
  name: string;
  /** Tables, logs and keys go with the stack. */
  ephemeral: boolean;
  removalPolicy: RemovalPolicy;
  logRetention: RetentionDays;
}

const KEPT_STAGES = new Set(['prod', 'production', 'staging']);
const STAGE_NAME = /^[a-z][a-z0-9-]{0,19}$/;

export class StageNameError extends Error {
  constructor(name: string) {
    super(
      `stage "${name}" is not a stage name: lower-case letters, digits and dashes, starting with a letter, at most 20`,
    );
    this.name = 'StageNameError';
  }
}

export function stageSettings(name = 'prod', ephemeral?: boolean): StageSettings {
  if (!STAGE_NAME.test(name)) throw new StageNameError(name);
  const isEphemeral = ephemeral ?? !KEPT_STAGES.has(name);
  return {
    name,
    ephemeral: isEphemeral,
    removalPolicy: isEphemeral ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
    // Kept stages: a quarter of logs for an incident's look-back; throwaway ones: a week.
    logRetention: isEphemeral ? RetentionDays.ONE_WEEK : RetentionDays.THREE_MONTHS,
  };
}

const STAGE_CONTEXT = 'order-saga:stage';

/** Makes the stage visible to every construct below `scope` (call before adding children). */
export function setStage(scope: IConstruct, stage: StageSettings): void {
  scope.node.setContext(STAGE_CONTEXT, stage);
}

/** The stage the construct is deployed in (set by the stack); a production stage when none is. */
export function stageOf(scope: IConstruct): StageSettings {
  return (scope.node.tryGetContext(STAGE_CONTEXT) as StageSettings | undefined) ?? stageSettings();
}
