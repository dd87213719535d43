import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { StaticRoute } from './http-gateway.ts';

/*
 * The API reference in the local runtime: `GET /openapi.json` is the committed OpenAPI document
 * (docs/openapi.json, which a test keeps equal to what the code builds), and `GET /docs` renders it
 * with Swagger UI (swagger-ui-dist, served from node_modules: no network).
 */

const OPENAPI_FILE = new URL('../../docs/openapi.json', import.meta.url);
const SWAGGER_UI = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

const PAGE = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Order saga API</title>
    <link rel="stylesheet" href="/docs/swagger-ui.css" />
  </head>
  <body>
    <div id="api"></div>
    <script src="/docs/swagger-ui-bundle.js"></script>
    <script src="/docs/init.js"></script>
  </body>
</html>
`;
// A script of its own rather than inline, so the page works under a strict Content-Security-Policy.
const INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#api', deepLinking: true });\n`;

const asset =
  (file: string, contentType: string): StaticRoute['respond'] =>
  async () => ({
    contentType,
    body: await readFile(join(SWAGGER_UI, file)),
  });

export function apiDocsRoutes(): StaticRoute[] {
  return [
    {
      path: '/openapi.json',
      respond: async () => ({ contentType: 'application/json', body: await readFile(OPENAPI_FILE) }),
    },
    { path: '/docs', respond: async () => ({ contentType: 'text/html; charset=utf-8', body: PAGE }) },
    { path: '/docs/init.js', respond: async () => ({ contentType: 'text/javascript', body: INIT }) },
    { path: '/docs/swagger-ui.css', respond: asset('swagger-ui.css', 'text/css') },
    { path: '/docs/swagger-ui-bundle.js', respond: asset('swagger-ui-bundle.js', 'text/javascript') },
  ];
}
