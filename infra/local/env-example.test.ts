import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { LocalConfigSchema, localConfigFrom } from './config.ts';

/** `.env.example`: every knob, set (`KEY=value`) or shown commented out (`# KEY=value`). */
async function example(): Promise<{ set: Record<string, string>; commented: string[] }> {
  const text = await readFile(new URL('../../.env.example', import.meta.url), 'utf8');
  const set: Record<string, string> = {};
  const commented: string[] = [];
  for (const line of text.split('\n')) {
    const active = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (active) set[active[1]!] = active[2]!;
    const inactive = /^# ([A-Z][A-Z0-9_]*)=/.exec(line);
    if (inactive) commented.push(inactive[1]!);
  }
  return { set, commented };
}

describe('.env.example', () => {
  it('names every knob of the local runtime, and no other', async () => {
    const { set, commented } = await example();
    expect([...Object.keys(set), ...commented].sort()).toEqual(Object.keys(LocalConfigSchema.shape).sort());
  });

  it("sets each knob it sets to the runtime's default", async () => {
    const { set } = await example();
    expect(localConfigFrom(set)).toEqual(localConfigFrom({}));
  });
});
