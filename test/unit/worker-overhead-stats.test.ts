// The worker-overhead benchmark's paired statistics (bench/worker-overhead-stats.ts).

import { describe, expect, it } from 'vitest';
import { summarize, type OverheadPair } from '../../bench/worker-overhead-stats.js';

const timing = (ttftMs: number, decodeTokensPerS: number) => ({ ttftMs, decodeTokensPerS, tokens: 32, text: 'x' });

describe('summarize', () => {
  it('pairs each prompt with itself: the prompts’ own spread does not enter the difference', () => {
    // TTFTs from 20 to 115 ms, the worker always 1 ms later and 2 % slower to decode.
    const pairs: OverheadPair[] = Array.from({ length: 20 }, (_, i) => ({
      prompt: `p${i}`,
      workerFirst: i % 2 === 0,
      worker: timing(21 + 5 * i, 49),
      mainThread: timing(20 + 5 * i, 50),
    }));
    const s = summarize(pairs);
    expect(s.ttftDiffMs).toEqual({ value: expect.closeTo(1, 9), lo: expect.closeTo(1, 9), hi: expect.closeTo(1, 9) });
    // Main-thread median TTFT: (65 + 70) / 2 = 67.5 ms.
    expect(s.ttftOverPct.value).toBeCloseTo(100 / 67.5, 9);
    expect(s.decodeUnderPct.value).toBeCloseTo(2, 9);
    expect(s.mainThread.ttftMs).toBeCloseTo(67.5, 9);
    expect(s.worker.decodeTokensPerS).toBe(49);
  });

  it('resists an outlier, and its interval widens with the spread and holds the estimate', () => {
    const diffs = [0.2, -0.5, 1.1, 0.4, -0.2, 0.9, 0.3, 80, -1.0, 0.6, 0.1, 0.5];
    const pairs: OverheadPair[] = diffs.map((d, i) => ({ prompt: `p${i}`, workerFirst: i % 2 === 0, worker: timing(40 + d, 30), mainThread: timing(40, 30) }));
    const s = summarize(pairs);
    expect(s.ttftDiffMs.value).toBeCloseTo(0.35, 9);
    expect(s.ttftDiffMs.lo).toBeLessThanOrEqual(s.ttftDiffMs.value);
    expect(s.ttftDiffMs.hi).toBeGreaterThanOrEqual(s.ttftDiffMs.value);
    expect(s.ttftDiffMs.hi - s.ttftDiffMs.lo).toBeGreaterThan(0.2);
    expect(s.ttftDiffMs.hi).toBeLessThan(2);
    // Seeded: the same runs give the same interval.
    expect(summarize(pairs)).toEqual(s);
  });
});
