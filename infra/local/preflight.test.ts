import { execFileSync, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { StreamDifference } from '../../shared/nats.ts';
import {
  checkJava,
  checkNats,
  checkPort,
  EXIT_CODES,
  formatProblem,
  javaMajorVersion,
  preflightLocalRuntime,
  preflightLocalstack,
  systemProbes,
  type PreflightProbes,
} from './preflight.ts';
import { freePort } from './processes.ts';

const JAVA_17 = 'openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment (build 17.0.15+6)\n';
const JAVA_11 = 'openjdk version "11.0.2" 2019-01-15\nOpenJDK Runtime Environment 18.9 (build 11.0.2+9)\n';

/** Probes of a machine where everything is in order; each test spoils what it is about. */
function probes(overrides: Partial<PreflightProbes> = {}): PreflightProbes {
  return {
    javaVersion: async () => JAVA_17,
    bindPort: async () => undefined,
    connects: async () => false,
    onPath: async () => true,
    streamDifferences: async () => [],
    ...overrides,
  };
}

const lines = (problems: Array<{ reason: string; fix?: string }>) => problems.map(formatProblem);

describe('Java', () => {
  it.each([
    [JAVA_17, 17],
    [JAVA_11, 11],
    ['java version "1.8.0_292"\nJava(TM) SE Runtime Environment', 8],
    ['openjdk version "21" 2023-09-19', 21],
    ['Picked up JAVA_TOOL_OPTIONS: -Xmx1g\nopenjdk version "25-ea" 2025-09-16', 25],
  ])('reads the major version out of `java -version` (%j → %i)', (output, major) => {
    expect(javaMajorVersion(output)).toBe(major);
  });

  it('accepts Java 17 and later', () => {
    expect(checkJava(JAVA_17)).toBeUndefined();
    expect(checkJava('openjdk version "21.0.1"')).toBeUndefined();
  });

  it('names a missing java and how to install one', () => {
    expect(formatProblem(checkJava(undefined)!)).toMatch(
      /^java is not on the PATH \(DynamoDB Local runs on Java 17 or later\); fix: apt-get install default-jre-headless/,
    );
  });

  it('refuses Java 11, saying which version it found and which it needs', () => {
    expect(formatProblem(checkJava(JAVA_11)!)).toMatch(
      /^java on the PATH is Java 11; DynamoDB Local needs Java 17 or later; fix: install a newer one .*apt-get install default-jre-headless/,
    );
  });

  it('says what `java -version` printed when it cannot read it', () => {
    expect(checkJava('Error: could not open libjvm.so')?.reason).toMatch(
      /it said: Error: could not open libjvm\.so/,
    );
  });
});

describe('ports', () => {
  it('names a taken port and the knob that moves it', () => {
    expect(
      formatProblem(
        checkPort({ host: '127.0.0.1', port: 3000, code: 'EADDRINUSE', knob: 'PORT', command: 'npm start' })!,
      ),
    ).toBe(
      "port 3000 on 127.0.0.1 is already in use; fix: stop what listens there (`ss -ltnp 'sport = :3000'` shows it) or use another port: PORT=3001 npm start",
    );
  });

  it('probes by binding and releasing: a held port is EADDRINUSE, a free one is free again after', async () => {
    const held = await listen();
    try {
      expect(await systemProbes.bindPort('127.0.0.1', held.port)).toBe('EADDRINUSE');
    } finally {
      await held.close();
    }
    const port = await freePort();
    expect(await systemProbes.bindPort('127.0.0.1', port)).toBeUndefined();
    // Released: it can be bound again at once.
    expect(await systemProbes.bindPort('127.0.0.1', port)).toBeUndefined();
  });
});

describe('NATS', () => {
  it('NATS_URL: nothing answers there', async () => {
    const plan = await checkNats({ NATS_URL: 'nats://127.0.0.1:4999', NATS_UPDATE_STREAMS: false }, probes());
    expect(lines(plan.problems)).toEqual([
      'nothing answers at NATS_URL=nats://127.0.0.1:4999; fix: start that server, or unset NATS_URL and npm start finds or starts one (nats-server on the PATH)',
    ]);
  });

  it('NATS_URL unset, nothing on 4222 and no nats-server on the PATH', async () => {
    const plan = await checkNats({ NATS_UPDATE_STREAMS: false }, probes({ onPath: async () => false }));
    expect(lines(plan.problems)).toEqual([
      expect.stringMatching(
        /^nats-server is not on the PATH and nothing answers on 127\.0\.0\.1:4222; fix: apt-get install nats-server .*or set NATS_URL=nats:\/\/host:4222/,
      ),
    ]);
  });

  it('NATS_URL unset and nothing on 4222: its own nats-server, not shared', async () => {
    const asked: string[] = [];
    const plan = await checkNats(
      { NATS_UPDATE_STREAMS: false },
      probes({
        onPath: async (command) => (asked.push(command), true),
        connects: async (host, port) => (asked.push(`${host}:${port}`), false),
      }),
    );
    expect(plan).toEqual({ shared: false, problems: [] });
    expect(asked).toEqual(['127.0.0.1:4222', 'nats-server']);
  });

  const ORDERS_1H: StreamDifference = { stream: 'ORDERS', setting: 'max age', existing: '1h', wanted: '24h' };

  it('a server on 4222 is shared, and streams of it that differ stop the start, one line each, with how to proceed', async () => {
    const plan = await checkNats(
      { NATS_UPDATE_STREAMS: false },
      probes({
        connects: async (_, port) => port === 4222,
        streamDifferences: async () => [
          ORDERS_1H,
          { stream: 'ORDERS', setting: 'subjects', existing: 'order.*, orders.>', wanted: 'order.*' },
        ],
      }),
    );
    expect(plan.shared).toBe(true);
    expect(plan.url).toBe('nats://127.0.0.1:4222');
    expect(lines(plan.problems)).toEqual([
      "NATS at nats://127.0.0.1:4222 (not started by npm start): stream ORDERS's max age is 1h, the runtime's is 24h",
      "NATS at nats://127.0.0.1:4222 (not started by npm start): stream ORDERS's subjects is order.*, orders.>, the runtime's is order.*",
      expect.stringMatching(
        /^npm start does not change streams on a server it did not start; fix: NATS_UPDATE_STREAMS=true npm start updates them .*or stop the server on 127\.0\.0\.1:4222, or start a private one/,
      ),
    ]);
  });

  it('with NATS_UPDATE_STREAMS=true the differences are the runtime to resolve: no problem, not even a read', async () => {
    const plan = await checkNats(
      { NATS_URL: 'nats://127.0.0.1:4333', NATS_UPDATE_STREAMS: true },
      probes({
        connects: async () => true,
        streamDifferences: async () => {
          throw new Error('not asked');
        },
      }),
    );
    expect(plan).toEqual({ url: 'nats://127.0.0.1:4333', shared: true, problems: [] });
  });

  it('a server that answers without JetStream is one line too', async () => {
    const plan = await checkNats(
      { NATS_URL: 'nats://127.0.0.1:4333', NATS_UPDATE_STREAMS: false },
      probes({
        connects: async () => true,
        streamDifferences: async () => {
          throw new Error('jetstream is not enabled');
        },
      }),
    );
    expect(lines(plan.problems)).toEqual([
      expect.stringMatching(
        /^NATS at nats:\/\/127\.0\.0\.1:4333 answers but its streams cannot be read \(jetstream is not enabled\); fix: .*unset NATS_URL/,
      ),
    ]);
  });
});

describe('npm start pre-flight', () => {
  it('lists every problem, not only the first', async () => {
    const { problems } = await preflightLocalRuntime(
      { PORT: 3000, NATS_URL: 'nats://127.0.0.1:4999', NATS_UPDATE_STREAMS: false },
      probes({ javaVersion: async () => undefined, bindPort: async () => 'EADDRINUSE' }),
    );
    expect(lines(problems)).toEqual([
      expect.stringMatching(/^port 3000 on 127\.0\.0\.1 is already in use; .*PORT=3001 npm start$/),
      expect.stringMatching(/^java is not on the PATH/),
      expect.stringMatching(/^nothing answers at NATS_URL=nats:\/\/127\.0\.0\.1:4999/),
    ]);
  });

  it('does not bind PORT=0 (a free port, picked at start)', async () => {
    const { problems } = await preflightLocalRuntime(
      { PORT: 0, NATS_UPDATE_STREAMS: false },
      probes({ bindPort: async () => 'EADDRINUSE' }),
    );
    expect(problems).toEqual([]);
  });

  it('LocalStack not answering, for deploy:localstack', async () => {
    const problems = await preflightLocalstack({ LOCALSTACK_URL: 'http://localhost:4566' }, probes());
    expect(lines(problems)).toEqual([
      expect.stringMatching(
        /^LocalStack does not answer at http:\/\/localhost:4566; fix: start it .*LOCALSTACK_URL/,
      ),
    ]);
  });
});

// --- The commands themselves, as a person runs them: real child processes ---

const root = join(import.meta.dirname, '..', '..');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Processes left in the command's process group once it exited (it runs in a group of its own). */
  leftovers: string[];
}

/** Runs `node <script>` in a process group of its own, to exit or `until` its output says so. */
async function run(
  script: string,
  env: NodeJS.ProcessEnv,
  until?: (stdout: string) => boolean,
): Promise<Run> {
  const started = Date.now();
  const child = spawn(process.execPath, [script], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
    if (until?.(stdout)) child.kill('SIGTERM');
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) =>
    child.once('exit', (exitCode) => resolve(exitCode)),
  );
  const ms = Date.now() - started;
  const leftovers = execFileSync('ps', ['-eo', 'pid=,pgid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.trim().split(/\s+/)[1] === String(child.pid));
  return { code, stdout, stderr, ms, leftovers };
}

/** What a newcomer's shell has, minus whatever the test sets. */
function environment(overrides: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, SEED_DEMO_DATA: 'false', LOG_LEVEL: 'SILENT' };
  for (const key of ['NATS_URL', 'NATS_UPDATE_STREAMS', 'LOCAL_FAULTS', 'STRIPE_WEBHOOK_URL'])
    delete env[key];
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

async function listen(): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  return { port: address.port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

describe('npm start (node infra/local/main.ts) stops before anything slow starts', () => {
  let bin: string;
  let held: { port: number; close(): Promise<void> };
  let unreachableNats: string;

  beforeAll(async () => {
    // A PATH of its own: a `java` that is Java 11, and no nats-server.
    bin = await mkdtemp(join(tmpdir(), 'preflight-bin-'));
    await writeFile(join(bin, 'java'), `#!/bin/sh\necho '${JAVA_11.split('\n')[0]}' >&2\n`);
    await chmod(join(bin, 'java'), 0o755);
    held = await listen();
    unreachableNats = `nats://127.0.0.1:${await freePort()}`;
  });

  afterAll(async () => {
    await held.close();
    await rm(bin, { recursive: true, force: true });
  });

  it('the HTTP port taken: one line with the fix, exit 3, in under 2 s, nothing left running', async () => {
    // The tests' own nats-server: it answers, and its streams are the runtime's.
    const result = await run(
      'infra/local/main.ts',
      environment({ PORT: String(held.port), NATS_URL: inject('natsUrl') }),
    );
    expect(result.stderr).toBe(
      `order-saga: port ${held.port} on 127.0.0.1 is already in use; fix: stop what listens there (\`ss -ltnp 'sport = :${held.port}'\` shows it) or use another port: PORT=${held.port + 1} npm start\n`,
    );
    expect(result.stdout).not.toMatch(/starting DynamoDB Local/);
    expect(result.code).toBe(EXIT_CODES.missingPrerequisite);
    expect(result.ms).toBeLessThan(2000);
    expect(result.leftovers).toEqual([]);
  });

  it('Java 11, no nats-server and an unreachable NATS_URL: every problem, one line each', async () => {
    const result = await run(
      'infra/local/main.ts',
      environment({ PORT: String(held.port), NATS_URL: unreachableNats, PATH: bin }),
    );
    expect(result.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(`^order-saga: port ${held.port} on 127\\.0\\.0\\.1 is already in use; fix: `),
      ),
      'order-saga: java on the PATH is Java 11; DynamoDB Local needs Java 17 or later; fix: install a newer one and put it first on the PATH: apt-get install default-jre-headless (Debian/Ubuntu; any Java 17+ will do, e.g. brew install openjdk)',
      `order-saga: nothing answers at NATS_URL=${unreachableNats}; fix: start that server, or unset NATS_URL and npm start finds or starts one (nats-server on the PATH)`,
    ]);
    expect(result.code).toBe(EXIT_CODES.missingPrerequisite);
    expect(result.leftovers).toEqual([]);
  });

  it('no java on the PATH at all', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'preflight-empty-'));
    try {
      const result = await run(
        'infra/local/main.ts',
        environment({ PORT: '0', NATS_URL: unreachableNats, PATH: empty }),
      );
      expect(result.stderr).toContain(
        'order-saga: java is not on the PATH (DynamoDB Local runs on Java 17 or later); fix: apt-get install default-jre-headless',
      );
      expect(result.stderr).not.toMatch(/guard|not found|\n\s+at /);
      expect(result.code).toBe(EXIT_CODES.missingPrerequisite);
      expect(result.leftovers).toEqual([]);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('a bad knob is one line and exit 2, as before', async () => {
    const result = await run('infra/local/main.ts', environment({ LOCAL_FAULTS: 'webhook.drop=2' }));
    expect(result.stderr).toMatch(
      /^order-saga: Invalid configuration:\n {2}LOCAL_FAULTS: 'webhook\.drop=2' is not allowed/,
    );
    expect(result.code).toBe(EXIT_CODES.badConfiguration);
  });
});

describe('npm run stripe:emulator and npm run deploy:localstack', () => {
  it('stripe:emulator works as the README writes it: webhooks default to the local API', async () => {
    const result = await run(
      'infra/local/stripe-emulator-main.ts',
      environment({ STRIPE_EMULATOR_PORT: '0', PORT: undefined }),
      (stdout) => stdout.includes('faults in force'),
    );
    expect(result.stdout).toMatch(
      /^Stripe emulator on http:\/\/127\.0\.0\.1:\d+; webhooks → http:\/\/127\.0\.0\.1:3000\/payments\/webhook \(npm start on PORT; /,
    );
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.leftovers).toEqual([]);
  });

  it('stripe:emulator: its port taken is one line and exit 3; a bad knob one line and exit 2', async () => {
    const held = await listen();
    try {
      const taken = await run(
        'infra/local/stripe-emulator-main.ts',
        environment({ STRIPE_EMULATOR_PORT: String(held.port) }),
      );
      expect(taken.stderr).toBe(
        `stripe:emulator: port ${held.port} on 127.0.0.1 is already in use; fix: stop what listens there (\`ss -ltnp 'sport = :${held.port}'\` shows it) or use another port: STRIPE_EMULATOR_PORT=${held.port + 1} npm run stripe:emulator\n`,
      );
      expect(taken.code).toBe(EXIT_CODES.missingPrerequisite);
    } finally {
      await held.close();
    }
    const bad = await run('infra/local/stripe-emulator-main.ts', environment({ STRIPE_WEBHOOK_URL: 'nope' }));
    expect(bad.stderr).toBe(
      'stripe:emulator: Invalid configuration:\n  STRIPE_WEBHOOK_URL: must be a URL, <API base URL>/payments/webhook (unset: http://127.0.0.1:${PORT:-3000}/payments/webhook)\n',
    );
    expect(bad.code).toBe(EXIT_CODES.badConfiguration);
  });

  it('deploy:localstack without LocalStack: one line, exit 3, no ECONNREFUSED stack', async () => {
    const localstack = `http://127.0.0.1:${await freePort()}`;
    const result = await run(
      'infra/localstack/deploy.ts',
      environment({
        LOCALSTACK_URL: localstack,
        NATS_URL: 'nats://host.docker.internal:4222',
        STRIPE_API_URL: 'http://host.docker.internal:12111',
      }),
    );
    expect(result.stderr).toBe(
      `deploy:localstack: LocalStack does not answer at ${localstack}; fix: start it (it needs Docker, and current images need LOCALSTACK_AUTH_TOKEN): LOCALSTACK_AUTH_TOKEN=… npm run localstack:start; or set LOCALSTACK_URL to where it runs\n`,
    );
    expect(result.code).toBe(EXIT_CODES.missingPrerequisite);
  });

  it('deploy:localstack without NATS_URL: the knob, exit 2', async () => {
    const result = await run('infra/localstack/deploy.ts', environment({ STRIPE_API_URL: 'http://x:12111' }));
    expect(result.stderr).toMatch(/^deploy:localstack: Invalid configuration:\n {2}NATS_URL: /);
    expect(result.code).toBe(EXIT_CODES.badConfiguration);
  });
});
