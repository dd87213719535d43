import { StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { isRecord, type Json } from './common.ts';

/*
 * The state machines an endpoint serves: fixed at start, validated by the library, with every Task
 * state indexed by name so that the runner can dispatch it locally.
 */

type TaskKind = 'lambda-function' | 'lambda-invoke' | 'lambda-invoke-wait' | 'unsupported';

export interface TaskInfo {
  name: string;
  resource: string;
  kind: TaskKind;
  timeoutSeconds: number | undefined;
  timeoutSecondsPath: string | undefined;
  /** Names of the Parallel/Map states this task is nested in, outermost first. */
  ancestors: string[];
}

export interface Machine {
  name: string;
  arn: string;
  roleArn: string;
  definition: string;
  library: StateMachine;
  /** The same definition starting at another top-level state, built on the first redrive that needs it. */
  resumable: Map<string, StateMachine>;
  startAt: string;
  topLevelStates: Set<string>;
  tasks: Map<string, TaskInfo>;
  creationDate: number;
}

const DEFAULT_TASK_TIMEOUT_SECONDS = 60;
const LAMBDA_FUNCTION_ARN =
  /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$/;
const SERVICE_INTEGRATION = /^arn:aws[a-z-]*:states:::([A-Za-z0-9-]+):([A-Za-z0-9._:-]+)$/;

/** Builds and validates the endpoint's machines, keyed by ARN; throws on an invalid definition. */
export function loadStateMachines(
  stateMachines: Array<{ name: string; definition: Record<string, unknown> }>,
  accountId: string,
  stateMachineArn: (name: string) => string,
): Map<string, Machine> {
  const machines = new Map<string, Machine>();
  for (const { name, definition } of stateMachines) {
    const arn = stateMachineArn(name);
    if (machines.has(arn)) throw new Error(`State machine '${name}' is defined more than once`);
    // The constructor validates the definition (asl-validator); Resource ARNs are local, so no ARN checks.
    const library = new StateMachine(definition as unknown as StateMachineDefinition, {
      validationOptions: { checkArn: false },
    });
    const tasks = new Map<string, TaskInfo>();
    collectTasks(name, definition, [], tasks);
    machines.set(arn, {
      name,
      arn,
      roleArn: `arn:aws:iam::${accountId}:role/StepFunctions-${name}`,
      definition: JSON.stringify(definition),
      library,
      resumable: new Map(),
      startAt: String(definition.StartAt),
      topLevelStates: new Set(isRecord(definition.States) ? Object.keys(definition.States) : []),
      tasks,
      creationDate: Date.now(),
    });
  }
  return machines;
}

/** The machine's one definition, entered at `state` instead of StartAt: how a redrive resumes. */
export function libraryStartingAt(machine: Machine, state: string): StateMachine {
  if (state === machine.startAt) return machine.library;
  let library = machine.resumable.get(state);
  if (!library) {
    const definition = { ...(JSON.parse(machine.definition) as StateMachineDefinition), StartAt: state };
    // Validated at start; the validator would only object that the states before `state` are unreachable.
    library = new StateMachine(definition, { validationOptions: { noValidate: true } });
    machine.resumable.set(state, library);
  }
  return library;
}

function classifyResource(resource: string): TaskKind {
  if (LAMBDA_FUNCTION_ARN.test(resource)) return 'lambda-function';
  const integration = SERVICE_INTEGRATION.exec(resource);
  if (integration?.[1] === 'lambda' && integration[2] === 'invoke') return 'lambda-invoke';
  if (integration?.[1] === 'lambda' && integration[2] === 'invoke.waitForTaskToken')
    return 'lambda-invoke-wait';
  return 'unsupported';
}

/** Every Task state, nested ones in Parallel branches and Map processors included. */
function collectTasks(
  machineName: string,
  definition: unknown,
  ancestors: string[],
  into: Map<string, TaskInfo>,
): void {
  if (!isRecord(definition)) return;
  if (definition.QueryLanguage === 'JSONata') {
    throw new Error(`State machine '${machineName}': JSONata is not supported locally; use JSONPath`);
  }
  const states = definition.States;
  if (!isRecord(states)) return;
  for (const [name, state] of Object.entries(states)) {
    if (!isRecord(state)) continue;
    if (state.QueryLanguage === 'JSONata') {
      throw new Error(`State machine '${machineName}', state '${name}': JSONata is not supported locally`);
    }
    if (state.Type === 'Task') {
      if (into.has(name)) {
        throw new Error(
          `State machine '${machineName}': Task state name '${name}' is used more than once; ` +
            'local Task dispatch is keyed by state name',
        );
      }
      const resource = typeof state.Resource === 'string' ? state.Resource : '';
      into.set(name, {
        name,
        resource,
        kind: classifyResource(resource),
        timeoutSeconds: typeof state.TimeoutSeconds === 'number' ? state.TimeoutSeconds : undefined,
        timeoutSecondsPath:
          typeof state.TimeoutSecondsPath === 'string' ? state.TimeoutSecondsPath : undefined,
        ancestors,
      });
    } else if (state.Type === 'Parallel' && Array.isArray(state.Branches)) {
      for (const branch of state.Branches) collectTasks(machineName, branch, [...ancestors, name], into);
    } else if (state.Type === 'Map') {
      collectTasks(machineName, state.ItemProcessor ?? state.Iterator, [...ancestors, name], into);
    }
  }
}

/** resourceType/resource as AWS history reports them: `lambda`/`invoke`, or `lambda`/the function ARN. */
export function describeResource(task: TaskInfo): { resourceType: string; resource: string } {
  const integration = SERVICE_INTEGRATION.exec(task.resource);
  if (integration?.[1] && integration[2]) return { resourceType: integration[1], resource: integration[2] };
  return { resourceType: 'lambda', resource: task.resource };
}

/** The task's timeout for this effective input, as the library computes it. */
export function taskTimeoutMs(task: TaskInfo, input: Json): number {
  // Mirrors the library's TaskStateAction.getTimeoutMs, which reads the same effective input.
  if (task.timeoutSeconds) return task.timeoutSeconds * 1000;
  if (task.timeoutSecondsPath) {
    const value = readPath(task.timeoutSecondsPath, input);
    if (typeof value === 'number' && Number.isInteger(value) && value >= 1) return value * 1000;
  }
  return DEFAULT_TASK_TIMEOUT_SECONDS * 1000;
}

/** Evaluates a simple reference path (`$.a.b[0]['c']`) the way TimeoutSecondsPath uses one. */
function readPath(path: string, value: unknown): unknown {
  if (!path.startsWith('$')) return undefined;
  const step = /\.([^.[\]]+)|\[(\d+)\]|\['([^']*)'\]|\["([^"]*)"\]/y;
  let current = value;
  step.lastIndex = 1;
  while (step.lastIndex < path.length) {
    const match = step.exec(path);
    if (!match) return undefined;
    const key = match[1] ?? match[3] ?? match[4];
    if (key !== undefined) current = isRecord(current) ? current[key] : undefined;
    else current = Array.isArray(current) ? current[Number(match[2])] : undefined;
  }
  return current;
}
