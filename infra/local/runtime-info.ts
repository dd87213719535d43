import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { LocalRuntime } from './runtime.ts';

/**
 * `.tmp/local-runtime.json`: where a running `npm start` tells operations scripts (infra/ops/) how
 * to reach it. Written once the runtime is ready, removed when it stops.
 */
export const LOCAL_RUNTIME_INFO_FILE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '.tmp',
  'local-runtime.json',
);

export const LocalRuntimeInfoSchema = z.object({
  /** The `npm start` process; a file whose process is gone is stale. */
  pid: z.number().int().positive(),
  apiUrl: z.url(),
  natsUrl: z.string().min(1),
  stripeUrl: z.url(),
  stepFunctionsUrl: z.url(),
  dynamodbEndpoint: z.url(),
  stateMachineArn: z.string().startsWith('arn:'),
  tableNames: z.object({
    orders: z.string().min(1),
    inventory: z.string().min(1),
    payments: z.string().min(1),
  }),
  /** ISO 8601. */
  startedAt: z.iso.datetime(),
});
export type LocalRuntimeInfo = z.infer<typeof LocalRuntimeInfoSchema>;

/** The info file's content for a running runtime (this process's). */
export function runtimeInfoOf(
  runtime: Pick<
    LocalRuntime,
    'apiUrl' | 'natsUrl' | 'stripeUrl' | 'stepFunctionsUrl' | 'dynamodbEndpoint' | 'tableNames'
  >,
  stateMachineArn: string,
  startedAt: Date = new Date(),
): LocalRuntimeInfo {
  return {
    pid: process.pid,
    apiUrl: runtime.apiUrl,
    natsUrl: runtime.natsUrl,
    stripeUrl: runtime.stripeUrl,
    stepFunctionsUrl: runtime.stepFunctionsUrl,
    dynamodbEndpoint: runtime.dynamodbEndpoint,
    stateMachineArn,
    tableNames: runtime.tableNames,
    startedAt: startedAt.toISOString(),
  };
}

/** Writes the file whole (a reader never sees half of it). */
export async function writeLocalRuntimeInfo(
  info: LocalRuntimeInfo,
  file: string = LOCAL_RUNTIME_INFO_FILE,
): Promise<void> {
  const parsed = LocalRuntimeInfoSchema.parse(info);
  await mkdir(dirname(file), { recursive: true });
  const partial = `${file}.${parsed.pid}.partial`;
  await writeFile(partial, `${JSON.stringify(parsed, null, 2)}\n`);
  await rename(partial, file);
}

/** Removes the file if it is still this process's: a second `npm start` may have replaced it. */
export async function removeLocalRuntimeInfo(
  pid: number = process.pid,
  file: string = LOCAL_RUNTIME_INFO_FILE,
): Promise<void> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  let owner: unknown;
  try {
    owner = (JSON.parse(text) as { pid?: unknown }).pid;
  } catch {
    owner = undefined; // not a file anyone can use: remove it
  }
  if (typeof owner === 'number' && owner !== pid) return;
  await rm(file, { force: true });
}
