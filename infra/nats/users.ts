import { nkeys } from '@nats-io/nats-core';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * The NATS users of the cluster, as NKEYs: one seed file per role (the secret, which a client reads
 * through `NATS_CREDS`) and `nkeys.conf`, the server-side include with their public keys, which
 * `infra/nats/cluster/accounts.conf` gives the role's permissions:
 *
 *   npm run nats:users [-- <dir>]
 *
 * Writes `<dir>/<role>.nk` (mode 0600) and `<dir>/nkeys.conf` to `<dir>` (default `.nats/users`).
 * Idempotent: an existing seed is kept (a user's identity never changes under a running client),
 * a missing one is made, and `nkeys.conf` is rewritten from the seeds. For local clusters and
 * tests; production seeds are made the same way (or with `nk -gen user`) and kept in a secret store.
 */

export const DEFAULT_USERS_DIR = '.nats/users';

/**
 * The roles, each with the variable `accounts.conf` reads its public key from. Permissions live in
 * `accounts.conf`, next to the rest of the server's configuration.
 */
export const NATS_ROLES = {
  /** The outbox bridge: publishes domain events, nothing else. */
  bridge: { account: 'ORDER_SAGA', variable: 'ORDER_SAGA_BRIDGE_NKEY' },
  /** Creates and updates streams and consumers (`npm run nats:setup`). */
  admin: { account: 'ORDER_SAGA', variable: 'ORDER_SAGA_ADMIN_NKEY' },
  /**
   * A downstream service: joins its durable push consumer's queue group, takes its deliveries and
   * acks them; cannot create or delete consumers nor publish events (`examples/consumer.ts`).
   */
  service: { account: 'ORDER_SAGA', variable: 'ORDER_SAGA_SERVICE_NKEY' },
  /**
   * Tail and inspection (`events:tail`), trusted operators only: it creates consumers, and
   * nats-server lets a consumer deliver anywhere, onto event subjects too. Never a service's role.
   */
  consumer: { account: 'ORDER_SAGA', variable: 'ORDER_SAGA_CONSUMER_NKEY' },
  /**
   * `npm run events:replay`, trusted operators only: reads which ids the streams hold, republishes
   * the events they lack.
   */
  replay: { account: 'ORDER_SAGA', variable: 'ORDER_SAGA_REPLAY_NKEY' },
  /** The system account's user, for server monitoring (`nats server report …`). */
  sys: { account: 'SYS', variable: 'SYS_NKEY' },
} as const;

export type NatsRole = keyof typeof NATS_ROLES;

export interface UsersResult {
  dir: string;
  /** Path of each role's seed file: what `NATS_CREDS` points at. */
  seeds: Record<NatsRole, string>;
  publicKeys: Record<NatsRole, string>;
  /** The server-side include. */
  include: string;
  /** Roles whose seed this run made. */
  created: NatsRole[];
}

const roles = Object.keys(NATS_ROLES) as NatsRole[];

function readSeed(path: string): string {
  const seed = readFileSync(path, 'utf8').trim();
  let publicKey: string;
  try {
    publicKey = nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey();
  } catch (error) {
    throw new Error(`${path} is not an NKEY seed; delete it to make a new user`, { cause: error });
  }
  if (!publicKey.startsWith('U'))
    throw new Error(`${path} holds a seed that is not a user's (SU…); delete it to make a new user`);
  return seed;
}

/** Makes (or keeps) every role's seed in `dir` and writes the include; see the module comment. */
export function makeUsers(dir: string = DEFAULT_USERS_DIR): UsersResult {
  const absolute = resolve(dir);
  mkdirSync(absolute, { recursive: true, mode: 0o700 });
  const seeds = {} as Record<NatsRole, string>;
  const publicKeys = {} as Record<NatsRole, string>;
  const created: NatsRole[] = [];
  for (const role of roles) {
    const path = join(absolute, `${role}.nk`);
    if (!existsSync(path)) {
      const user = nkeys.createUser();
      writeFileSync(path, `${new TextDecoder().decode(user.getSeed())}\n`, { mode: 0o600 });
      created.push(role);
    }
    chmodSync(path, 0o600);
    seeds[role] = path;
    publicKeys[role] = nkeys.fromSeed(new TextEncoder().encode(readSeed(path))).getPublicKey();
  }
  const include = join(absolute, 'nkeys.conf');
  const text = [
    '# Written by `npm run nats:users` from the seeds beside this file: public keys only, not secret.',
    '# infra/nats/cluster/accounts.conf includes it and gives each user its permissions.',
    ...roles.map((role) => `${NATS_ROLES[role].variable}: "${publicKeys[role]}"`),
    '',
  ].join('\n');
  if (!existsSync(include) || readFileSync(include, 'utf8') !== text) writeFileSync(include, text);
  return { dir: absolute, seeds, publicKeys, include, created };
}

if (import.meta.main) {
  let positionals: string[];
  try {
    positionals = parseArgs({ allowPositionals: true, options: {} }).positionals;
  } catch (error) {
    console.error(`nats:users: ${(error as Error).message}; usage: npm run nats:users -- [dir]`);
    process.exit(2);
  }
  try {
    const result = makeUsers(positionals[0] ?? DEFAULT_USERS_DIR);
    for (const role of roles) {
      const state = result.created.includes(role) ? 'made' : 'kept';
      console.log(
        `nats:users: ${role.padEnd(8)} ${NATS_ROLES[role].account.padEnd(10)} ${result.publicKeys[role]} (${state}) NATS_CREDS=${result.seeds[role]}`,
      );
    }
    console.log(`nats:users: public keys for the servers: ${result.include}`);
  } catch (error) {
    console.error(`nats:users: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
