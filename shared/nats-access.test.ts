import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from './errors.ts';
import {
  describeNatsAccess,
  natsAccessFromEnv,
  natsAccessFromSecret,
  natsServers,
  withoutPassword,
} from './nats-access.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nats-access-'));
  await writeFile(join(dir, 'bridge.nk'), 'SUAEXAMPLESEEDNOTREAL\n');
  await writeFile(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('NATS access', () => {
  it('reads the servers, the seed file and the CA from the environment', () => {
    const access = natsAccessFromEnv({
      NATS_URL: 'tls://a:4222, tls://b:4222',
      NATS_CREDS: join(dir, 'bridge.nk'),
      NATS_TLS_CA: join(dir, 'ca.pem'),
    });
    expect(access.servers).toEqual(['tls://a:4222', 'tls://b:4222']);
    expect(access.credentials).toContain('SUAEXAMPLESEEDNOTREAL');
    expect(access.tlsCa).toContain('BEGIN CERTIFICATE');
    expect(describeNatsAccess(access)).toBe('tls://a:4222, tls://b:4222 (NKEY, TLS with pinned CA)');
  });

  it('refuses a missing file or URL as configuration, naming the variable', () => {
    expect(() => natsAccessFromEnv({ NATS_URL: 'nats://a:4222', NATS_CREDS: join(dir, 'nope.nk') })).toThrow(
      ConfigError,
    );
    expect(() =>
      natsAccessFromEnv({ NATS_URL: 'nats://a:4222', NATS_TLS_CA: join(dir, 'nope.pem') }),
    ).toThrow(/NATS_TLS_CA: cannot read .*nope\.pem: ENOENT/);
    expect(() => natsAccessFromEnv({})).toThrow(/NATS_URL is not set/);
  });

  it('reads a Secrets Manager secret, and refuses one it cannot use without echoing it', () => {
    expect(
      natsAccessFromSecret('nats://a:4222', JSON.stringify({ user: 'bridge', password: 's3cret' })),
    ).toEqual({
      servers: ['nats://a:4222'],
      user: 'bridge',
      password: 's3cret',
    });
    expect(() => natsAccessFromSecret('nats://a:4222', JSON.stringify({ user: 'bridge' }))).toThrow(
      /user and password go together/,
    );
    expect(() => natsAccessFromSecret('nats://a:4222', 'not json s3cret')).toThrow(/not JSON/);
    expect(() => natsAccessFromSecret('nats://a:4222', 'not json s3cret')).not.toThrow(/s3cret/);
  });

  it('never shows a password given in a URL', () => {
    expect(withoutPassword('nats://bridge:s3cret@host:4222')).toBe('nats://bridge:***@host:4222');
    expect(withoutPassword('nats://host:4222')).toBe('nats://host:4222');
    const access = { servers: natsServers('nats://bridge:s3cret@a:4222,nats://b:4222') };
    expect(describeNatsAccess(access)).toBe(
      'nats://bridge:***@a:4222, nats://b:4222 (no credentials, no TLS)',
    );
  });
});
