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

/** `replicas`: 1 on a single server (local), 3 on the production cluster. */
export function streamDefinitions(replicas = 1): StreamDefinition[] {
  return (Object.keys(STREAMS) as StreamName[]).map((name) => ({
    name,
    subjects: [STREAMS[name]],
    maxAgeMs: DAY_MS,
    duplicateWindowMs: 2 * 60 * 1000,
    replicas,
  }));
}
