import { configOrExit, EXIT_CODES } from '../local/preflight.ts';
import { deployCommand, outputsFile } from './commands.ts';
import { runCdk } from './run-cdk.ts';

/**
 * `npm run deploy [-- <cdk deploy arguments>]`: deploys the stage named by STAGE (default prod)
 * with the parameters and context the environment gives (docs/deploy.md), and writes its outputs
 * to .tmp/outputs-<stage>.json. Exit codes: 2 a bad variable, else the CDK CLI's.
 */
const PREFIX = 'deploy';
const command = configOrExit(PREFIX, () => deployCommand(process.env, process.argv.slice(2)));
console.log(`${PREFIX}: stage ${command.stage}, stack ${command.stack}`);
const status = runCdk(command);
if (status === 0) {
  console.log(`${PREFIX}: done; outputs in ${outputsFile(command.stage)}`);
  console.log(
    `${PREFIX}: point the Stripe webhook endpoint at <HttpUrl…>/payments/webhook (docs/deploy.md), and subscribe someone to AlarmTopicArn if no ALARM_EMAILS / ALARM_URLS were given`,
  );
}
process.exit(status === 0 ? 0 : status || EXIT_CODES.failure);
