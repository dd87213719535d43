import type { z } from 'zod';
import { ConfigError } from './errors.ts';

/**
 * Parses a function's configuration from the environment, once, at cold start. Throws a
 * ConfigError naming every bad variable: a misconfigured function must not start.
 */
export function parseConfig<T extends z.ZodType>(
  schema: T,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<T> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map(
    (issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`,
  );
  throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
}
