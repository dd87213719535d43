import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { buildOpenApiDocument } from './openapi.ts';

/** `npm run docs:openapi`: writes docs/openapi.json from the request schemas and the route list, formatted as the repo formats JSON. */
const file = fileURLToPath(new URL('./openapi.json', import.meta.url));
const text = await format(JSON.stringify(buildOpenApiDocument()), {
  ...(await resolveConfig(file)),
  filepath: file,
});
await writeFile(file, text);
console.log(`wrote ${file}`);
