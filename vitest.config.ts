import { defineConfig } from 'vitest/config';

// Vitest 5's reporter calls Map.groupBy, which Node 20 lacks (it arrived in Node 21).
if (typeof (Map as { groupBy?: unknown }).groupBy !== 'function') {
  (Map as unknown as { groupBy: <K, T>(items: Iterable<T>, key: (t: T, i: number) => K) => Map<K, T[]> }).groupBy = (items, key) => {
    const m = new Map();
    let i = 0;
    for (const it of items) {
      const k = key(it, i++);
      const arr = m.get(k) ?? [];
      arr.push(it);
      m.set(k, arr);
    }
    return m;
  };
}

export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/gpu/**/*.test.ts', 'test/oracle/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: 'forks',
    globalSetup: ['test/global-setup.ts'],
    fileParallelism: false,
  },
});
