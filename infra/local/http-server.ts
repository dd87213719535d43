import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/*
 * What every local endpoint (the HTTP API gateway, the Lambda Invoke API, the Step Functions
 * endpoint, the Stripe emulator) does the same way: read a request body with a size limit, listen
 * on a port (0: any free one) and close, dropping the connections still open.
 */

/** A body larger than the endpoint's limit; each endpoint answers it as its service would. */
export class BodyTooLargeError extends Error {
  readonly limitBytes: number;
  constructor(limitBytes: number) {
    super(`Request body larger than ${limitBytes} bytes`);
    this.name = 'BodyTooLargeError';
    this.limitBytes = limitBytes;
  }
}

/** The whole body, or BodyTooLargeError as soon as it passes `limitBytes` (the rest is not read). */
export async function readBody(
  request: IncomingMessage,
  limitBytes = Number.POSITIVE_INFINITY,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > limitBytes) throw new BodyTooLargeError(limitBytes);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks);
}

export interface ListeningServer {
  server: Server;
  /** `http://<host>:<port>`, with the port the server got. */
  url: string;
  port: number;
  /** Stops listening and ends every open connection (keep-alive ones too). */
  close(): Promise<void>;
}

/** Listens on host:port (port 0: a free one); rejects when it cannot (the port taken, say). */
export async function listen(
  listener: RequestListener,
  options: { host?: string; port?: number } = {},
): Promise<ListeningServer> {
  const host = options.host ?? '127.0.0.1';
  const server = createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
