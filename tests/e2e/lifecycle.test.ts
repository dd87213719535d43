import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { pollUntil } from '../support/poll.ts';

/*
 * `npm start` as a user runs it: a real child process. It must answer health once ready and leave
 * no java (DynamoDB Local) behind, whether it is asked to stop or killed outright.
 */

const root = join(import.meta.dirname, '..', '..');
const started: ChildProcess[] = [];

afterEach(() => {
  for (const child of started.splice(0))
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Pids of java processes whose command line contains every one of `parts`, read from /proc. */
function javaPidsWith(...parts: string[]): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        return /(^|\/)java$/.test(args[0] ?? '') && parts.every((part) => args.includes(part));
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function startMain() {
  const child = spawn(process.execPath, ['infra/local/main.ts'], {
    cwd: root,
    env: {
      ...process.env,
      PORT: '0',
      NATS_URL: inject('natsUrl'),
      SEED_DEMO_DATA: 'false',
      LOG_LEVEL: 'SILENT',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await pollUntil(
    'npm start prints its URLs',
    async () => output,
    (text) => /Press Ctrl-C/.test(text) || child.exitCode !== null,
    90_000,
  );
  const api = /API\s+(http:\/\/\S+)/.exec(output)?.[1];
  const dynamodbPort = /DynamoDB\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(output)?.[1];
  if (!api || !dynamodbPort) throw new Error(`npm start did not come up:\n${output}`);
  return { child, api, dynamodbPort, exited, output: () => output };
}

describe('npm start', () => {
  it('is ready when /health answers, and SIGTERM stops every child it started', async () => {
    const main = await startMain();
    const health = await fetch(`${main.api}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect(javaPidsWith('-port', main.dynamodbPort)).toHaveLength(1);

    main.child.kill('SIGTERM');
    expect(await main.exited).toBe(0);
    await pollUntil(
      'java is gone',
      async () => javaPidsWith('-port', main.dynamodbPort),
      (pids) => pids.length === 0,
      10_000,
    );
  });

  it('leaves no java behind even when killed outright', async () => {
    const main = await startMain();
    expect(javaPidsWith('-port', main.dynamodbPort)).toHaveLength(1);

    main.child.kill('SIGKILL');
    await main.exited;
    await pollUntil(
      'java is gone',
      async () => javaPidsWith('-port', main.dynamodbPort),
      (pids) => pids.length === 0,
      10_000,
    );
  });
});
