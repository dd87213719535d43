import { STREAMS, type StreamName } from '../../events/subjects.ts';

/** The JetStream streams of the contract, independent of any client library's types. */
export interface StreamDefinition {
  name: StreamName;
  subjects: string[];
  maxAgeMs: number;
  duplicateWindowMs: number;
  replicas: number;
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * How long JetStream remembers a message id to drop its re-publish. The bridge re-publishes an event
 * only when an earlier record of its shard failed and Lambda retries from there; each bridge instance
 * also skips the ids it has had acknowledged (the last 10,000). Ten minutes covers a leader election,
 * a node restart and every retry until the iterator-age alarm (5 min) pages someone; the ids it holds
 * cost the servers memory (about 60 MB at 1,000 events/s). Beyond it, consumers drop a duplicate by
 * (source, subject, sequence), as the contract says.
 */
export const DUPLICATE_WINDOW_MS = 10 * 60 * 1000;

/** `replicas`: 1 on a single server (local), 3 on the production cluster. */
export function streamDefinitions(replicas = 1): StreamDefinition[] {
  return (Object.keys(STREAMS) as StreamName[]).map((name) => ({
    name,
    subjects: [STREAMS[name]],
    maxAgeMs: DAY_MS,
    duplicateWindowMs: DUPLICATE_WINDOW_MS,
    replicas,
  }));
}
