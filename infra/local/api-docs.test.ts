import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../../docs/openapi.ts';
import { apiDocsRoutes } from './api-docs.ts';
import { startHttpGateway, type HttpGateway } from './http-gateway.ts';
import type { LambdaHost } from './lambda-host.ts';

let gateway: HttpGateway;

beforeAll(async () => {
  gateway = await startHttpGateway({
    routes: [],
    lambdas: {} as LambdaHost,
    port: 0,
    staticRoutes: apiDocsRoutes(),
  });
});

afterAll(async () => {
  await gateway?.close();
});

describe('the API reference in the local runtime', () => {
  it('serves GET /openapi.json: the committed document, which is what the code builds', async () => {
    const response = await fetch(`${gateway.url}/openapi.json`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    const served = (await response.json()) as unknown;
    const committed = JSON.parse(
      await readFile(new URL('../../docs/openapi.json', import.meta.url), 'utf8'),
    ) as unknown;
    expect(served).toEqual(committed);
    expect(served).toEqual(JSON.parse(JSON.stringify(buildOpenApiDocument())));
  });

  it('renders it at GET /docs with Swagger UI, every asset served locally', async () => {
    const page = await fetch(`${gateway.url}/docs`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('/docs/swagger-ui-bundle.js');
    for (const path of ['/docs/init.js', '/docs/swagger-ui-bundle.js', '/docs/swagger-ui.css']) {
      const asset = await fetch(`${gateway.url}${path}`);
      expect(asset.status, path).toBe(200);
      expect((await asset.text()).length, path).toBeGreaterThan(10);
    }
    expect(await (await fetch(`${gateway.url}/docs/init.js`)).text()).toContain("url: '/openapi.json'");
  });

  it('answers only GET, and nothing else of node_modules', async () => {
    expect((await fetch(`${gateway.url}/openapi.json`, { method: 'POST' })).status).toBe(404);
    expect((await fetch(`${gateway.url}/docs/package.json`)).status).toBe(404);
  });
});
