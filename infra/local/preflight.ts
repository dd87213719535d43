import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { ConfigError } from '../../shared/errors.ts';
import type { StreamDifference } from '../../shared/nats.ts';
import { natsServerAddresses } from './config.ts';
import { canConnect, DEFAULT_NATS } from './processes.ts';

/*
 * The checks `npm start`, `npm run stripe:emulator` and `npm run deploy:localstack` make before
 * anything slow starts, so that a missing prerequisite is one line with its fix, not a stack trace
 * after Java is up. Each check is a pure function of what its probe found; `systemProbes` are the
 * real probes, and tests inject their own. Every problem is reported, not only the first.
 */

/** The exit codes of the three commands (docs/local-runtime.md, "Exit codes"). */
export const EXIT_CODES = {
  /** Anything unexpected: a bug, or an engine that failed while starting; the message says which. */
  failure: 1,
  /** A knob (environment variable) has a bad value; nothing was started. */
  badConfiguration: 2,
  /**
   * A prerequisite is missing or in the way (Java, nats-server, a port, NATS, LocalStack, existing
   * JetStream streams that differ); nothing is left running.
   */
  missingPrerequisite: 3,
} as const;

/** One problem: what is wrong and, when there is one, what to do about it. */
export interface PreflightProblem {
  reason: string;
  fix?: string;
}

/** `reason; fix: …`, one line. */
export function formatProblem(problem: PreflightProblem): string {
  return problem.fix ? `${problem.reason}; fix: ${problem.fix}` : problem.reason;
}

/** What the checks ask of the machine; `systemProbes` asks the real one. */
export interface PreflightProbes {
  /** The output of `java -version` (it writes to stderr), or undefined when no `java` is on the PATH. */
  javaVersion(): Promise<string | undefined>;
  /** Binds host:port and releases it at once: undefined when it could, else the error code (`EADDRINUSE`, `EACCES`). */
  bindPort(host: string, port: number): Promise<string | undefined>;
  /** Whether a TCP connection to host:port succeeds within a second. */
  connects(host: string, port: number): Promise<boolean>;
  /** Whether `command` is an executable file in a directory of the PATH. */
  onPath(command: string): Promise<boolean>;
  /**
   * How the JetStream streams on a reachable NATS server differ from the local runtime's definitions
   * (none when they match or do not exist yet); throws when it cannot tell (e.g. no JetStream).
   */
  streamDifferences(natsUrl: string): Promise<StreamDifference[]>;
}

/** DynamoDB Local's jar needs this Java or later. */
export const MINIMUM_JAVA = 17;
const INSTALL_JAVA =
  'apt-get install default-jre-headless (Debian/Ubuntu; any Java 17+ will do, e.g. brew install openjdk)';
const INSTALL_NATS =
  'apt-get install nats-server (Debian/Ubuntu), or a release from https://github.com/nats-io/nats-server/releases';

/** The major version in `java -version`'s output: `openjdk version "17.0.15"` → 17, `"1.8.0_292"` → 8. */
export function javaMajorVersion(output: string): number | undefined {
  const match = /version "(\d+)(?:\.(\d+))?[^"]*"/.exec(output);
  if (!match) return undefined;
  const major = Number(match[1]);
  return major === 1 && match[2] !== undefined ? Number(match[2]) : major;
}

/** Java 17 or later on the PATH, for DynamoDB Local. */
export function checkJava(output: string | undefined): PreflightProblem | undefined {
  if (output === undefined)
    return {
      reason: `java is not on the PATH (DynamoDB Local runs on Java ${MINIMUM_JAVA} or later)`,
      fix: INSTALL_JAVA,
    };
  const major = javaMajorVersion(output);
  if (major === undefined) {
    const first = output.trim().split('\n')[0] ?? '';
    return {
      reason: `could not read a version from \`java -version\` (${first ? `it said: ${first}` : 'it said nothing'})`,
      fix: `put a working Java ${MINIMUM_JAVA}+ first on the PATH: ${INSTALL_JAVA}`,
    };
  }
  if (major < MINIMUM_JAVA)
    return {
      reason: `java on the PATH is Java ${major}; DynamoDB Local needs Java ${MINIMUM_JAVA} or later`,
      fix: `install a newer one and put it first on the PATH: ${INSTALL_JAVA}`,
    };
  return undefined;
}

/** The port a server is about to listen on is free (`code` from `bindPort`; port 0 never fails). */
export function checkPort(what: {
  host: string;
  port: number;
  code: string | undefined;
  /** The knob that moves it and the command, for the fix: `PORT`, `npm start`. */
  knob: string;
  command: string;
}): PreflightProblem | undefined {
  const { host, port, code, knob, command } = what;
  if (code === undefined) return undefined;
  const other = `${knob}=${port === 65_535 ? port - 1 : port + 1} ${command}`;
  if (code === 'EADDRINUSE')
    return {
      reason: `port ${port} on ${host} is already in use`,
      fix: `stop what listens there (\`ss -ltnp 'sport = :${port}'\` shows it) or use another port: ${other}`,
    };
  if (code === 'EACCES')
    return {
      reason: `port ${port} on ${host} needs privileges this user does not have`,
      fix: `use a port above 1023: ${other}`,
    };
  if (code === 'EADDRNOTAVAIL')
    return {
      reason: `${host} is not an address of this machine`,
      fix: 'listen on 127.0.0.1, or 0.0.0.0 for every address',
    };
  return { reason: `cannot listen on ${host}:${port} (${code})`, fix: `use another port: ${other}` };
}

/** How NATS will be found, and whether it can be. */
export interface NatsPlan {
  /** The URL the runtime will use, when it is an existing server. */
  url?: string;
  /** A server this runtime did not start (shared with whatever else uses it). */
  shared: boolean;
  problems: PreflightProblem[];
}

/**
 * NATS, as the runtime will resolve it (processes.ts `resolveNats`): `NATS_URL` must answer; unset,
 * a server on 127.0.0.1:4222 is used when it answers, else `nats-server` must be on the PATH. The
 * streams on a server that is there already must match the definitions unless
 * `NATS_UPDATE_STREAMS=true` lets the runtime update them.
 */
export async function checkNats(
  config: { NATS_URL?: string | undefined; NATS_UPDATE_STREAMS: boolean },
  probes: Pick<PreflightProbes, 'connects' | 'onPath' | 'streamDifferences'>,
): Promise<NatsPlan> {
  let url: string;
  if (config.NATS_URL) {
    const servers = natsServerAddresses(config.NATS_URL);
    const answers = await Promise.all(servers.map((server) => probes.connects(server.host, server.port)));
    if (!answers.some(Boolean))
      return {
        shared: true,
        problems: [
          {
            reason: `nothing answers at NATS_URL=${config.NATS_URL}`,
            fix: 'start that server, or unset NATS_URL and npm start finds or starts one (nats-server on the PATH)',
          },
        ],
      };
    url = config.NATS_URL;
  } else if (await probes.connects(DEFAULT_NATS.host, DEFAULT_NATS.port)) {
    url = DEFAULT_NATS.url;
  } else {
    if (await probes.onPath('nats-server')) return { shared: false, problems: [] };
    return {
      shared: false,
      problems: [
        {
          reason: `nats-server is not on the PATH and nothing answers on ${DEFAULT_NATS.host}:${DEFAULT_NATS.port}`,
          fix: `${INSTALL_NATS}; or set NATS_URL=nats://host:4222 to use a server you run`,
        },
      ],
    };
  }
  if (config.NATS_UPDATE_STREAMS) return { url, shared: true, problems: [] };
  let differences: StreamDifference[];
  try {
    differences = await probes.streamDifferences(url);
  } catch (error) {
    return {
      url,
      shared: true,
      problems: [
        {
          reason: `NATS at ${url} answers but its streams cannot be read (${error instanceof Error ? error.message : String(error)})`,
          fix: `give npm start a JetStream server (nats-server -js), or ${ownServerFix(config.NATS_URL)}`,
        },
      ],
    };
  }
  return { url, shared: true, problems: streamProblems(url, differences, config.NATS_URL) };
}

/** What to do instead of updating a shared server's streams, by how the server was found. */
function ownServerFix(natsUrl: string | undefined): string {
  return natsUrl
    ? 'unset NATS_URL (npm start then starts a nats-server of its own, unless one answers on 127.0.0.1:4222)'
    : `stop the server on ${DEFAULT_NATS.host}:${DEFAULT_NATS.port}, or start a private one and point NATS_URL at it: nats-server -js -p 4223 -sd "$(mktemp -d)" & NATS_URL=nats://127.0.0.1:4223 npm start`;
}

/**
 * One line per difference between a shared server's streams and the runtime's, then how to proceed
 * (`natsUrl`: the `NATS_URL` knob, unset when the server was found on 127.0.0.1:4222).
 */
export function streamProblems(
  url: string,
  differences: readonly StreamDifference[],
  natsUrl: string | undefined,
): PreflightProblem[] {
  if (differences.length === 0) return [];
  return [
    ...differences.map((difference) => ({
      reason: `NATS at ${url} (not started by npm start): stream ${difference.stream}'s ${difference.setting} is ${difference.existing}, the runtime's is ${difference.wanted}`,
    })),
    {
      reason: 'npm start does not change streams on a server it did not start',
      fix: `NATS_UPDATE_STREAMS=true npm start updates them (everything else using that server sees the change), or ${ownServerFix(natsUrl)}`,
    },
  ];
}

/** `npm start`: Java, the HTTP port and NATS, all at once. */
export async function preflightLocalRuntime(
  config: { PORT: number; NATS_URL?: string | undefined; NATS_UPDATE_STREAMS: boolean },
  probes: PreflightProbes,
): Promise<{ problems: PreflightProblem[]; nats: NatsPlan }> {
  const host = '127.0.0.1';
  const [java, port, nats] = await Promise.all([
    probes.javaVersion().then(checkJava),
    config.PORT === 0
      ? undefined
      : probes
          .bindPort(host, config.PORT)
          .then((code) => checkPort({ host, port: config.PORT, code, knob: 'PORT', command: 'npm start' })),
    checkNats(config, probes),
  ]);
  const problems = [port, java, ...nats.problems].filter((problem) => problem !== undefined);
  return { problems, nats };
}

/** `npm run stripe:emulator`: its port. */
export async function preflightStripeEmulator(
  config: { STRIPE_EMULATOR_HOST: string; STRIPE_EMULATOR_PORT: number },
  probes: Pick<PreflightProbes, 'bindPort'>,
): Promise<PreflightProblem[]> {
  const { STRIPE_EMULATOR_HOST: host, STRIPE_EMULATOR_PORT: port } = config;
  if (port === 0) return [];
  const problem = checkPort({
    host,
    port,
    code: await probes.bindPort(host, port),
    knob: 'STRIPE_EMULATOR_PORT',
    command: 'npm run stripe:emulator',
  });
  return problem ? [problem] : [];
}

/** `npm run deploy:localstack`: LocalStack answers. */
export async function preflightLocalstack(
  config: { LOCALSTACK_URL: string },
  probes: Pick<PreflightProbes, 'connects'>,
): Promise<PreflightProblem[]> {
  const url = new URL(config.LOCALSTACK_URL);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  if (await probes.connects(url.hostname.replace(/^\[(.*)\]$/, '$1'), port)) return [];
  return [
    {
      reason: `LocalStack does not answer at ${config.LOCALSTACK_URL}`,
      fix: 'start it (it needs Docker, and current images need LOCALSTACK_AUTH_TOKEN): LOCALSTACK_AUTH_TOKEN=… npm run localstack:start; or set LOCALSTACK_URL to where it runs',
    },
  ];
}

/** The real machine. */
export const systemProbes: PreflightProbes = {
  javaVersion: () =>
    new Promise((resolve) => {
      execFile('java', ['-version'], { timeout: 15_000 }, (error, stdout, stderr) => {
        if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') return resolve(undefined);
        resolve(`${stderr}${stdout}`);
      });
    }),
  bindPort: (host, port) =>
    new Promise((resolve) => {
      const server = createServer();
      server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(undefined)));
    }),
  connects: (host, port) => canConnect(host, port, 1000),
  async onPath(command) {
    for (const directory of (process.env.PATH ?? '').split(delimiter)) {
      if (!directory) continue;
      const file = join(directory, command);
      try {
        await access(file, constants.X_OK);
        if ((await stat(file)).isFile()) return true;
      } catch {
        // Not in this directory.
      }
    }
    return false;
  },
  async streamDifferences(natsUrl) {
    // Loaded only when a server is there to ask.
    const [{ checkStreams }, { streamDefinitions }, { natsAccessFromEnv }] = await Promise.all([
      import('../../shared/nats.ts'),
      import('../nats/streams.ts'),
      import('../../shared/nats-access.ts'),
    ]);
    // With the runtime's credentials and CA (NATS_CREDS, NATS_TLS_CA), as it will connect.
    return checkStreams(natsAccessFromEnv({ ...process.env, NATS_URL: natsUrl }), streamDefinitions(1));
  },
};

/** Prints one line per problem (`prefix: reason; fix: …`) and exits 3; returns when there are none. */
export function exitOnProblems(prefix: string, problems: readonly PreflightProblem[]): void {
  if (problems.length === 0) return;
  for (const problem of problems) console.error(`${prefix}: ${formatProblem(problem)}`);
  process.exit(EXIT_CODES.missingPrerequisite);
}

/** Parses the knobs; a ConfigError is printed as its sentence (no stack trace) and exits 2. */
export function configOrExit<T>(prefix: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(`${prefix}: ${error.message}`);
    process.exit(EXIT_CODES.badConfiguration);
  }
}
