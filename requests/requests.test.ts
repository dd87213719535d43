import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../docs/openapi.ts';

/** The request collection keeps up with the API: every route of the OpenAPI document is in it. */
describe('requests/order-saga.http', () => {
  it('has a request for every route of the HTTP API', async () => {
    const text = await readFile(new URL('./order-saga.http', import.meta.url), 'utf8');
    const requested = new Set(
      [...text.matchAll(/^(GET|PUT|POST|PATCH|DELETE) \{\{base\}\}([^?\s]*)/gm)].map(
        ([, method, path]) =>
          `${method} ${path!.replace(/\{\{sku\}\}/g, '{sku}').replace(/\{\{orderId\}\}/g, '{orderId}')}`,
      ),
    );
    const routes = Object.entries(buildOpenApiDocument().paths).flatMap(([path, item]) =>
      Object.keys(item as object)
        .filter((key) => ['get', 'put', 'post', 'patch', 'delete'].includes(key))
        .map((method) => `${method.toUpperCase()} ${path}`),
    );
    for (const route of routes) expect(requested, route).toContain(route);
  });
});
