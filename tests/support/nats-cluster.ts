import { jetstreamManager, type JetStreamManager, type StreamInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCertificates } from '../../infra/nats/certs.ts';
import { makeUsers, type NatsRole } from '../../infra/nats/users.ts';
import {
  canConnect,
  freePort,
  spawnSupervised,
  type SupervisedProcess,
} from '../../infra/local/processes.ts';
import type { NatsAccess } from '../../shared/nats-access.ts';
import { connectionOptions } from '../../shared/nats.ts';
import { pollUntil } from './poll.ts';

/*
 * The project's three-node JetStream cluster (infra/nats/cluster/*.conf, TLS and accounts on), run
 * hermetically: the config files are copied into a temporary directory laid out like the project
 * (so their relative paths and includes resolve there), with fresh certificates and NKEY users,
 * every loopback port swapped for a free one, and a store per node. Nothing else in them changes,
 * except `sync_interval: always` on a nats-server older than 2.10, which does not know it (logged).
 * Nodes are killed and restarted by the PID of the nats-server process itself.
 */

const root = join(import.meta.dirname, '..', '..');
const CONFIG_DIR = join('infra', 'nats', 'cluster');
const NODE_FILES = ['node-1.conf', 'node-2.conf', 'node-3.conf'] as const;
const SYNC_ALWAYS = /^\s*sync_interval:\s*always\s*$/m;

export interface ClusterNode {
  /** The `server_name` of its config: what stream and meta leaders are reported as. */
  readonly name: string;
  readonly clientUrl: string;
  readonly monitorUrl: string;
  /** Where the other nodes open their (mutual TLS) routes to it. */
  readonly routePort: number;
  /** The nats-server process's PID while it runs. */
  readonly pid: number | undefined;
  readonly running: boolean;
  /** The tail of its log. */
  output(): string;
}

export interface NatsCluster {
  readonly dir: string;
  readonly nodes: readonly ClusterNode[];
  /** Every node's client URL. */
  readonly servers: string[];
  /** PEM of the CA that signed the nodes' certificate. */
  readonly caPem: string;
  /** The local nats-server, e.g. `2.9.10`. */
  readonly serverVersion: string;
  /** True when `sync_interval: always` was dropped because the local nats-server predates it. */
  readonly droppedSyncInterval: boolean;
  /** How a role reaches the cluster: every server, its NKEY seed, the pinned CA. */
  access(role: NatsRole): NatsAccess;
  /** Path of a role's seed file (what `NATS_CREDS` would name). */
  seedFile(role: NatsRole): string;
  /** Polls until every running node reports the same JetStream meta leader; returns its name. */
  waitForMetaLeader(timeoutMs?: number): Promise<string>;
  /** The stream as the cluster reports it, read as admin. */
  streamInfo(stream: string): Promise<StreamInfo>;
  /** The node that leads `stream` now (asked with a 1 s timeout: poll it). */
  streamLeader(stream: string): Promise<ClusterNode>;
  /** Polls until `stream` has a leader and every other replica is current; returns its info. */
  waitForStreamReplicas(stream: string, timeoutMs?: number): Promise<StreamInfo>;
  /** Signals the node's nats-server by its PID (SIGKILL: a crash) and waits until it is gone. */
  kill(node: ClusterNode, signal?: NodeJS.Signals): Promise<void>;
  /** Starts the node again with the same config and store. */
  restart(node: ClusterNode): Promise<void>;
  /** Stops every node it started, makes sure each PID is gone, removes the directory. */
  stop(): Promise<void>;
}

/** The nats-server on the PATH: `nats-server: v2.9.10` → `{ text: '2.9.10', parts: [2, 9, 10] }`. */
export function localNatsServerVersion(): { text: string; parts: number[] } {
  const output = execFileSync('nats-server', ['--version'], { encoding: 'utf8' });
  const match = /v?(\d+)\.(\d+)\.(\d+)/.exec(output);
  if (!match) throw new Error(`cannot read the nats-server version from ${JSON.stringify(output)}`);
  return { text: match.slice(1, 4).join('.'), parts: match.slice(1, 4).map(Number) };
}

const atLeast = (parts: number[], wanted: number[]) => {
  for (let i = 0; i < wanted.length; i++) {
    if ((parts[i] ?? 0) !== wanted[i]) return (parts[i] ?? 0) > wanted[i]!;
  }
  return true;
};

/** `sync_interval` (and its `always`) exists from nats-server 2.10.0 on. */
export const supportsSyncInterval = (version = localNatsServerVersion()) =>
  atLeast(version.parts, [2, 10, 0]);

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The command line of a live process, or undefined. */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

interface NodeState {
  name: string;
  config: string;
  pidFile: string;
  clientPort: number;
  routePort: number;
  clientUrl: string;
  monitorUrl: string;
  process: SupervisedProcess | undefined;
  pid: number | undefined;
  lastOutput: string;
}

export async function startNatsCluster(): Promise<NatsCluster> {
  const version = localNatsServerVersion();
  const dropSync = !supportsSyncInterval(version);
  const dir = await mkdtemp(join(tmpdir(), 'order-saga-nats-cluster-'));
  const nodes: NodeState[] = [];
  let admin: { connection: NatsConnection; jsm: JetStreamManager; quick: JetStreamManager } | undefined;

  const stopNode = async (node: NodeState) => {
    const pid = node.pid;
    await node.process?.stop();
    // The guard stops its child; make sure, by PID, that this very nats-server (its unique pid
    // file is on its command line) is gone.
    if (pid !== undefined && isRunning(pid) && commandLine(pid)?.includes(node.pidFile))
      process.kill(pid, 'SIGKILL');
    if (pid !== undefined)
      await pollUntil(
        `${node.name} (pid ${pid}) exits`,
        async () => isRunning(pid),
        (alive) => !alive,
        10_000,
      );
    node.lastOutput = node.process?.output() ?? node.lastOutput;
    node.process = undefined;
    node.pid = undefined;
  };

  const stop = async () => {
    await admin?.connection.close().catch(() => {});
    admin = undefined;
    const failures = (await Promise.allSettled(nodes.map(stopNode))).filter(
      (result): result is PromiseRejectedResult => result.status === 'rejected',
    );
    await rm(dir, { recursive: true, force: true });
    if (failures.length > 0) throw failures[0]!.reason;
  };

  try {
    // Copies of the project's config files, ports swapped for free ones.
    const sources = NODE_FILES.map((file) => readFileSync(join(root, CONFIG_DIR, file), 'utf8'));
    const fixedPorts = [
      ...new Set(sources.flatMap((text) => [...text.matchAll(/127\.0\.0\.1:(\d+)/g)].map((m) => m[1]!))),
    ];
    const ports = new Map<string, number>();
    while (ports.size < fixedPorts.length) {
      const port = await freePort();
      if (![...ports.values()].includes(port)) ports.set(fixedPorts[ports.size]!, port);
    }
    mkdirSync(join(dir, CONFIG_DIR), { recursive: true });
    writeFileSync(
      join(dir, CONFIG_DIR, 'accounts.conf'),
      readFileSync(join(root, CONFIG_DIR, 'accounts.conf'), 'utf8'),
    );
    for (const [index, file] of NODE_FILES.entries()) {
      const source = sources[index]!;
      if (!SYNC_ALWAYS.test(source)) throw new Error(`${CONFIG_DIR}/${file} lacks sync_interval: always`);
      let text = source.replace(/127\.0\.0\.1:(\d+)/g, (_, port: string) => `127.0.0.1:${ports.get(port)}`);
      if (dropSync) text = text.replace(SYNC_ALWAYS, '');
      writeFileSync(join(dir, CONFIG_DIR, file), text);
      const name = /^server_name:\s*(\S+)/m.exec(source)?.[1];
      const client = /^listen:\s*127\.0\.0\.1:(\d+)/m.exec(text)?.[1];
      const monitor = /^http:\s*127\.0\.0\.1:(\d+)/m.exec(text)?.[1];
      const route = /^cluster\s*\{[^}]*?^\s+listen:\s*127\.0\.0\.1:(\d+)/ms.exec(text)?.[1];
      if (!name || !client || !monitor || !route)
        throw new Error(
          `${CONFIG_DIR}/${file}: expected server_name, listen, http and cluster.listen on 127.0.0.1`,
        );
      nodes.push({
        name,
        config: join(CONFIG_DIR, file),
        pidFile: join(dir, `${file}.pid`),
        clientPort: Number(client),
        routePort: Number(route),
        clientUrl: `nats://127.0.0.1:${client}`,
        monitorUrl: `http://127.0.0.1:${monitor}`,
        process: undefined,
        pid: undefined,
        lastOutput: '',
      });
    }
    if (dropSync)
      console.warn(
        `nats-cluster: the local nats-server v${version.text} predates sync_interval (2.10+): ` +
          'dropped "sync_interval: always" from the test copies of infra/nats/cluster/node-*.conf',
      );
    makeCertificates(join(dir, '.nats', 'certs'));
    makeUsers(join(dir, '.nats', 'users'));
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  const caPem = readFileSync(join(dir, '.nats', 'certs', 'ca.pem'), 'utf8');
  const seedFile = (role: NatsRole) => join(dir, '.nats', 'users', `${role}.nk`);
  const access = (role: NatsRole): NatsAccess => ({
    servers: nodes.map((node) => node.clientUrl),
    credentials: readFileSync(seedFile(role), 'utf8'),
    tlsCa: caPem,
  });

  const startNode = async (node: NodeState) => {
    if (existsSync(node.pidFile)) writeFileSync(node.pidFile, '');
    const proc = spawnSupervised('nats-server', ['-c', node.config, '-P', node.pidFile], { cwd: dir });
    node.process = proc;
    let exited = false;
    void proc.exited.then(() => (exited = true));
    const pid = await pollUntil(
      `${node.name} writes its pid file`,
      async () => {
        if (exited) throw new Error(`${node.name} exited while starting:\n${proc.output()}`);
        const text = existsSync(node.pidFile) ? readFileSync(node.pidFile, 'utf8').trim() : '';
        return /^\d+$/.test(text) ? Number(text) : undefined;
      },
      (value) => value !== undefined,
      20_000,
    );
    node.pid = pid;
    await pollUntil(
      `${node.name} accepts clients`,
      async () => {
        if (exited) throw new Error(`${node.name} exited while starting:\n${proc.output()}`);
        return canConnect('127.0.0.1', node.clientPort);
      },
      Boolean,
      20_000,
    );
  };

  const adminJsm = async () => {
    if (!admin) {
      const connection = await connect({
        ...connectionOptions(access('admin')),
        name: 'nats-cluster-harness',
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        timeout: 5_000,
      });
      admin = {
        connection,
        jsm: await jetstreamManager(connection, { timeout: 3_000 }),
        // For polling who leads a stream: while the replicas elect a leader nobody answers, and
        // a poll that gives up sooner sees the new one sooner.
        quick: await jetstreamManager(connection, { timeout: 1_000, checkAPI: false }),
      };
    }
    return admin;
  };

  const view = (node: NodeState): ClusterNode => ({
    name: node.name,
    clientUrl: node.clientUrl,
    monitorUrl: node.monitorUrl,
    routePort: node.routePort,
    get pid() {
      return node.pid;
    },
    get running() {
      return node.pid !== undefined;
    },
    output: () => node.process?.output() ?? node.lastOutput,
  });
  const views = nodes.map(view);
  const stateOf = (node: ClusterNode) => {
    const state = nodes.find((candidate) => candidate.name === node.name);
    if (!state) throw new Error(`no node ${node.name} in this cluster`);
    return state;
  };

  const cluster: NatsCluster = {
    dir,
    nodes: views,
    servers: nodes.map((node) => node.clientUrl),
    caPem,
    serverVersion: version.text,
    droppedSyncInterval: dropSync,
    access,
    seedFile,
    async waitForMetaLeader(timeoutMs = 30_000) {
      const leaders = await pollUntil(
        'the cluster elects a JetStream meta leader',
        async () =>
          Promise.all(
            nodes
              .filter((node) => node.pid !== undefined)
              .map(async (node) => {
                try {
                  const jsz = (await (
                    await fetch(`${node.monitorUrl}/jsz`, { signal: AbortSignal.timeout(2_000) })
                  ).json()) as {
                    meta_cluster?: { leader?: string; cluster_size?: number };
                  };
                  return jsz.meta_cluster?.cluster_size === nodes.length
                    ? (jsz.meta_cluster.leader ?? '')
                    : '';
                } catch {
                  return '';
                }
              }),
          ),
        (seen) => seen.length > 0 && seen[0] !== '' && seen.every((leader) => leader === seen[0]),
        timeoutMs,
      );
      return leaders[0]!;
    },
    async streamInfo(stream) {
      return (await adminJsm()).jsm.streams.info(stream);
    },
    async streamLeader(stream) {
      const leader = (await (await adminJsm()).quick.streams.info(stream)).cluster?.leader;
      const node = views.find((candidate) => candidate.name === leader);
      if (!node)
        throw new Error(`stream ${stream} has no leader among ${views.map((v) => v.name).join(', ')}`);
      return node;
    },
    async waitForStreamReplicas(stream, timeoutMs = 30_000) {
      const info = await pollUntil(
        `stream ${stream} has a leader and every replica current`,
        async () => cluster.streamInfo(stream).catch(() => undefined),
        (candidate) => {
          const state = candidate?.cluster;
          return (
            state?.leader !== undefined &&
            state.leader !== '' &&
            (state.replicas ?? []).length === (candidate?.config.num_replicas ?? 1) - 1 &&
            (state.replicas ?? []).every((replica) => replica.current && !replica.offline)
          );
        },
        timeoutMs,
      );
      return info!;
    },
    async kill(node, signal = 'SIGKILL') {
      const state = stateOf(node);
      const pid = state.pid;
      if (pid === undefined) throw new Error(`${node.name} is not running`);
      if (!commandLine(pid)?.includes(state.pidFile))
        throw new Error(`pid ${pid} is not ${node.name}'s nats-server any more`);
      process.kill(pid, signal);
      await state.process?.exited;
      await pollUntil(
        `${node.name} (pid ${pid}) is gone`,
        async () => isRunning(pid),
        (alive) => !alive,
        10_000,
      );
      state.lastOutput = state.process?.output() ?? '';
      state.process = undefined;
      state.pid = undefined;
    },
    async restart(node) {
      const state = stateOf(node);
      if (state.pid !== undefined) throw new Error(`${node.name} is still running`);
      await startNode(state);
    },
    stop,
  };

  try {
    await Promise.all(nodes.map(startNode));
    await cluster.waitForMetaLeader(60_000);
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
  return cluster;
}
