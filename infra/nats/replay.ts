import { EXIT_CODES } from '../local/preflight.ts';
import { runReplay } from './replay-events.ts';

/*
 * `npm run events:replay -- --order ID | --since TIME | --all [--dry-run]`: republishes outbox
 * events the streams lack, in their original order, ids and bodies (infra/nats/replay-events.ts,
 * docs/consuming-events.md#replay). Exit 0 done, 1 unexpected, 2 bad flags or configuration, 3 a
 * prerequisite missing (npm start, NATS, a stream, a table).
 */

if (import.meta.main) {
  process.exitCode = await runReplay(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`events:replay: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT_CODES.failure;
  });
}
