import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import type { CdkCommand } from './commands.ts';

/** Environment for the CDK CLI: no telemetry, no version check, no notices (no outside calls but AWS's). */
export const CDK_ENVIRONMENT = {
  CDK_DISABLE_CLI_TELEMETRY: 'true',
  CDK_DISABLE_VERSION_CHECK: '1',
} as const;

/** Runs the project's CDK CLI (`npx cdk`, or `binary`) with the command; returns its exit code. */
export function runCdk(
  command: CdkCommand,
  options: { binary?: string; env?: NodeJS.ProcessEnv } = {},
): number {
  mkdirSync('.tmp', { recursive: true });
  const result = spawnSync('npx', [options.binary ?? 'cdk', ...command.args], {
    stdio: 'inherit',
    env: { ...(options.env ?? process.env), ...CDK_ENVIRONMENT },
  });
  if (result.error) throw result.error;
  return result.status ?? 1;
}
