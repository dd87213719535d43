import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './errors.ts';

/*
 * How a process reaches NATS and proves who it is: servers, credentials and the CA to trust. The
 * same shape everywhere; locally it comes from the environment (`NATS_URL`, `NATS_CREDS`,
 * `NATS_TLS_CA`), on AWS from a Secrets Manager secret (`natsAccessFromSecret`).
 */

export interface NatsAccess {
  servers: string[];
  /**
   * The text of a `.creds` file (a user JWT and its NKEY seed, as `nsc` writes it) or of an NKEY
   * user seed (`SU…`, as `nk -gen user` writes it).
   */
  credentials?: string | undefined;
  /** User and password (`nats://user:password@host:4222` in a URL works too). */
  user?: string | undefined;
  password?: string | undefined;
  /**
   * PEM of the CA that signed the servers' certificates. Set, the connection must be TLS and only
   * this CA is trusted (pinned), not the system's.
   */
  tlsCa?: string | undefined;
}

/** `nats://a:4222, nats://b:4222` → two servers. */
export function natsServers(urls: string): string[] {
  return urls
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url.length > 0);
}

const readPemOrFile = (what: string, path: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError(`${what}: cannot read ${path}: ${code}`, { cause: error });
  }
};

/**
 * Access from the environment, as `npm start`, the scripts and the local Lambda host read it:
 * `NATS_URL` (comma-separated), `NATS_CREDS` (path of a `.creds` or NKEY seed file), `NATS_USER` /
 * `NATS_PASSWORD`, `NATS_TLS_CA` (path of a PEM file). Files are read once, here.
 */
export function natsAccessFromEnv(env: Record<string, string | undefined>, fallbackUrl?: string): NatsAccess {
  const url = env.NATS_URL?.trim() || fallbackUrl;
  if (!url) throw new ConfigError('NATS_URL is not set');
  return {
    servers: natsServers(url),
    credentials: env.NATS_CREDS ? readPemOrFile('NATS_CREDS', env.NATS_CREDS) : undefined,
    user: env.NATS_USER || undefined,
    password: env.NATS_PASSWORD || undefined,
    tlsCa: env.NATS_TLS_CA ? readPemOrFile('NATS_TLS_CA', env.NATS_TLS_CA) : undefined,
  };
}

/** The JSON a Secrets Manager secret holds for NATS (every field optional). */
const NatsSecretSchema = z
  .object({
    credentials: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    tlsCa: z.string().includes('BEGIN CERTIFICATE').optional(),
  })
  .strict()
  .refine((secret) => (secret.user === undefined) === (secret.password === undefined), {
    message: 'user and password go together',
  });

/** Access from the servers in configuration and the secret's JSON text. */
export function natsAccessFromSecret(urls: string, secretText: string): NatsAccess {
  let json: unknown;
  try {
    json = JSON.parse(secretText);
  } catch {
    throw new Error('the NATS secret is not JSON ({"credentials"?, "user"?, "password"?, "tlsCa"?})');
  }
  const parsed = NatsSecretSchema.safeParse(json);
  if (!parsed.success)
    throw new Error(
      `the NATS secret is not valid: ${parsed.error.issues.map((issue) => issue.message).join('; ')}`,
    );
  return { servers: natsServers(urls), ...parsed.data };
}

/** A server URL as it may be shown: `nats://bridge:s3cret@host:4222` → `nats://bridge:***@host:4222`. */
export const withoutPassword = (server: string): string =>
  server.replace(/^(\w+:\/\/[^:@/]+):[^@/]*@/, '$1:***@');

/** How a person sees the access in a banner or log line: never a secret, only what kind. */
export function describeNatsAccess(access: NatsAccess): string {
  const auth = access.credentials
    ? access.credentials.includes('BEGIN NATS USER JWT')
      ? 'creds file'
      : 'NKEY'
    : access.user
      ? `user ${access.user}`
      : 'no credentials';
  return `${access.servers.map(withoutPassword).join(', ')} (${auth}, ${access.tlsCa ? 'TLS with pinned CA' : 'no TLS'})`;
}
