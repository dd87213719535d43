import { stageSettings } from '../../stacks/stage.ts';
import { configOrExit, EXIT_CODES } from '../local/preflight.ts';
import { destroyCommand } from './commands.ts';
import { runCdk } from './run-cdk.ts';

/**
 * `STAGE=<stage> npm run destroy [-- <cdk destroy arguments>]`: removes that stage's stack; the CDK
 * CLI asks first. A kept stage (prod, production, staging) leaves its tables, log groups and alarm
 * key behind, by design (docs/deploy.md says how to remove them when that is truly meant).
 */
const PREFIX = 'destroy';
const command = configOrExit(PREFIX, () => destroyCommand(process.env, process.argv.slice(2)));
const kept = !stageSettings(command.stage).ephemeral;
console.log(
  `${PREFIX}: stage ${command.stage}, stack ${command.stack}${kept ? ' (a kept stage: its tables, logs and alarm key stay)' : ''}`,
);
const status = runCdk(command);
process.exit(status === 0 ? 0 : status || EXIT_CODES.failure);
