import { describe, expect, it } from 'vitest';
import { BodyTooLargeError, listen, readBody } from './http-server.ts';

describe('the local endpoints’ HTTP server', () => {
  it('reads a body, and refuses one past its limit without reading the rest', async () => {
    const seen: Array<string | number> = [];
    const server = await listen((request, response) => {
      void readBody(request, 8)
        .then((body) => seen.push(body.toString('utf8')))
        .catch((error: unknown) => seen.push(error instanceof BodyTooLargeError ? error.limitBytes : -1))
        .finally(() => response.end());
    });
    try {
      await fetch(server.url, { method: 'POST', body: 'short' });
      await fetch(server.url, { method: 'POST', body: 'longer than eight' });
      expect(seen).toEqual(['short', 8]);
    } finally {
      await server.close();
    }
  });

  it('listens on a free port of 127.0.0.1, refuses a taken one, and closes with connections open', async () => {
    const first = await listen((_request, response) => response.end('ok'));
    expect(first.url).toBe(`http://127.0.0.1:${first.port}`);
    await expect(listen(() => {}, { port: first.port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(await (await fetch(first.url, { keepalive: true })).text()).toBe('ok');
    await first.close();
    await expect(fetch(first.url)).rejects.toThrow();
  });
});
