import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

/**
 * Local test certificates for the NATS cluster: a CA and one server certificate (EC P-256) that
 * every node presents to clients and to the other nodes on routes (so it is valid for both TLS
 * server and client authentication), for `localhost`, `127.0.0.1`, `::1` and any `--host`:
 *
 *   npm run nats:certs [-- <dir> [--host nats-1.example.internal ...]]
 *
 * Writes `ca.pem` (what clients pin, `NATS_TLS_CA`), `ca-key.pem`, `server.pem` and
 * `server-key.pem` to `<dir>` (default `.nats/certs`). Idempotent: certificates that are valid for
 * at least 30 more days, match their keys and cover the hosts are kept; a CA is only replaced when
 * it is unusable (clients that pinned it keep working). Needs `openssl` on the PATH. For tests and
 * one machine; production certificates come from your PKI.
 */

export const DEFAULT_CERT_DIR = '.nats/certs';
export const DEFAULT_HOSTS = ['localhost', '127.0.0.1', '::1'] as const;

export interface CertificateFiles {
  dir: string;
  ca: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface CertificatesResult extends CertificateFiles {
  /** What this run wrote: nothing when everything was still valid. */
  wrote: Array<'ca' | 'server'>;
}

const MIN_REMAINING_MS = 30 * 24 * 3600 * 1000;

export function certificateFiles(dir: string): CertificateFiles {
  const absolute = resolve(dir);
  return {
    dir: absolute,
    ca: join(absolute, 'ca.pem'),
    caKey: join(absolute, 'ca-key.pem'),
    cert: join(absolute, 'server.pem'),
    key: join(absolute, 'server-key.pem'),
  };
}

const stillValid = (certificate: X509Certificate) =>
  new Date(certificate.validTo).getTime() - Date.now() > MIN_REMAINING_MS &&
  new Date(certificate.validFrom).getTime() <= Date.now();

const matchesKey = (certificate: X509Certificate, keyPath: string) => {
  try {
    return certificate.checkPrivateKey(createPrivateKey(readFileSync(keyPath)));
  } catch {
    return false;
  }
};

function readCertificate(path: string): X509Certificate | undefined {
  try {
    return new X509Certificate(readFileSync(path));
  } catch {
    return undefined;
  }
}

function usableCa(files: CertificateFiles): X509Certificate | undefined {
  const ca = readCertificate(files.ca);
  return ca && ca.ca && stillValid(ca) && matchesKey(ca, files.caKey) ? ca : undefined;
}

function usableServerCertificate(files: CertificateFiles, ca: X509Certificate, hosts: readonly string[]) {
  const certificate = readCertificate(files.cert);
  if (!certificate || !stillValid(certificate) || !matchesKey(certificate, files.key)) return false;
  if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) return false;
  return hosts.every((host) =>
    isIP(host) ? certificate.checkIP(host) !== undefined : certificate.checkHost(host) !== undefined,
  );
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`openssl ${args[0]} failed: ${stderr || String(error)}`, { cause: error });
  }
}

/** Our own minimal openssl configuration, so the system's `openssl.cnf` adds nothing. */
function opensslConfig(hosts: readonly string[]): string {
  const names = hosts.map((host) => (isIP(host) ? `IP:${host}` : `DNS:${host}`)).join(',');
  return [
    '[req]',
    'distinguished_name = dn',
    'prompt = no',
    '[dn]',
    'CN = order-saga',
    '[ca]',
    'basicConstraints = critical, CA:TRUE, pathlen:0',
    'keyUsage = critical, keyCertSign, cRLSign',
    'subjectKeyIdentifier = hash',
    '[server]',
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    // Routes: each node is a TLS client of the others, so the one certificate serves both ways.
    'extendedKeyUsage = serverAuth, clientAuth',
    `subjectAltName = ${names}`,
    'subjectKeyIdentifier = hash',
    'authorityKeyIdentifier = keyid',
    '',
  ].join('\n');
}

const serial = () => `0x${randomBytes(16).toString('hex').replace(/^./, '1')}`;

/** Makes (or keeps) the CA and the server certificate in `dir`; see the module comment. */
export function makeCertificates(
  dir: string = DEFAULT_CERT_DIR,
  options: { hosts?: readonly string[] } = {},
): CertificatesResult {
  const hosts = [...new Set([...DEFAULT_HOSTS, ...(options.hosts ?? [])])];
  const files = certificateFiles(dir);
  mkdirSync(files.dir, { recursive: true, mode: 0o700 });
  const wrote: CertificatesResult['wrote'] = [];
  const work = mkdtempSync(join(tmpdir(), 'order-saga-certs-'));
  try {
    const config = join(work, 'openssl.cnf');
    writeFileSync(config, opensslConfig(hosts));
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

    let ca = usableCa(files);
    if (!ca) {
      openssl([
        'req', '-x509', ...ec, '-config', config, '-extensions', 'ca',
        '-subj', '/O=order-saga/CN=order-saga local NATS CA',
        '-days', '3650', '-set_serial', serial(),
        '-keyout', files.caKey, '-out', files.ca,
      ]); // prettier-ignore
      chmodSync(files.caKey, 0o600);
      ca = new X509Certificate(readFileSync(files.ca));
      wrote.push('ca');
    }
    if (wrote.includes('ca') || !usableServerCertificate(files, ca, hosts)) {
      const csr = join(work, 'server.csr');
      openssl([
        'req', '-new', ...ec, '-config', config,
        '-subj', '/O=order-saga/CN=order-saga NATS server',
        '-keyout', files.key, '-out', csr,
      ]); // prettier-ignore
      chmodSync(files.key, 0o600);
      openssl([
        'x509', '-req', '-in', csr, '-CA', files.ca, '-CAkey', files.caKey,
        '-set_serial', serial(), '-days', '825',
        '-extfile', config, '-extensions', 'server', '-out', files.cert,
      ]); // prettier-ignore
      wrote.push('server');
    }
    return { ...files, wrote };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  let parsed;
  try {
    parsed = parseArgs({ allowPositionals: true, options: { host: { type: 'string', multiple: true } } });
  } catch (error) {
    console.error(
      `nats:certs: ${(error as Error).message}; usage: npm run nats:certs -- [dir] [--host NAME]…`,
    );
    process.exit(2);
  }
  const { values, positionals } = parsed;
  const dir = positionals[0] ?? DEFAULT_CERT_DIR;
  try {
    const result = makeCertificates(dir, { hosts: values.host ?? [] });
    const what = result.wrote.length === 0 ? 'still valid, kept' : `wrote ${result.wrote.join(' and ')}`;
    console.log(`nats:certs: ${result.dir}: ${what}`);
    console.log(`nats:certs: clients pin the CA with NATS_TLS_CA=${result.ca}`);
  } catch (error) {
    console.error(`nats:certs: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
}
