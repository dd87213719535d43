import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { buildAsyncApiDocument } from './asyncapi.ts';

/** `npm run docs:asyncapi`: writes events/asyncapi.json from the event definitions, formatted as the repo formats JSON. */
const file = fileURLToPath(new URL('./asyncapi.json', import.meta.url));
const text = await format(JSON.stringify(buildAsyncApiDocument()), {
  ...(await resolveConfig(file)),
  filepath: file,
});
await writeFile(file, text);
console.log(`wrote ${file}`);
