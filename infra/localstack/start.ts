import { spawnSync } from 'node:child_process';
import { z } from 'zod';
import { parseConfig } from '../../shared/config.ts';
import { configOrExit, EXIT_CODES } from '../local/preflight.ts';

/**
 * `npm run localstack:start`: LocalStack in Docker, detached, on port 4566, for
 * `npm run deploy:localstack`. Current LocalStack images refuse to start without an auth token,
 * so LOCALSTACK_AUTH_TOKEN is required and passed through to the container (by name: its value
 * never appears on a command line). The Docker socket is mounted so that Lambda functions can run
 * in containers of their own. Stop it with `docker stop order-saga-localstack`.
 */
const PREFIX = 'localstack:start';
const config = configOrExit(PREFIX, () =>
  parseConfig(
    z.object({
      LOCALSTACK_AUTH_TOKEN: z
        .string({
          message:
            'set it: current LocalStack images need an auth token (LocalStack web app → Auth Tokens); it is passed to the container',
        })
        .min(1),
      LOCALSTACK_IMAGE: z.string().min(1).default('localstack/localstack:latest'),
      LOCALSTACK_PORT: z.coerce.number().int().min(1).max(65_535).default(4566),
    }),
  ),
);

const result = spawnSync(
  'docker',
  [
    'run',
    '--rm',
    '--detach',
    '--name',
    'order-saga-localstack',
    '--publish',
    `127.0.0.1:${config.LOCALSTACK_PORT}:4566`,
    '--env',
    'LOCALSTACK_AUTH_TOKEN',
    '--volume',
    '/var/run/docker.sock:/var/run/docker.sock',
    config.LOCALSTACK_IMAGE,
  ],
  { stdio: 'inherit', env: process.env },
);
if (result.error) {
  console.error(
    `${PREFIX}: could not run docker (${(result.error as NodeJS.ErrnoException).code ?? result.error.message}): LocalStack needs Docker`,
  );
  process.exit(EXIT_CODES.missingPrerequisite);
}
if (result.status !== 0) process.exit(result.status ?? EXIT_CODES.failure);
console.log(
  `${PREFIX}: LocalStack is starting at http://localhost:${config.LOCALSTACK_PORT}; then NATS_URL=… npm run deploy:localstack`,
);
