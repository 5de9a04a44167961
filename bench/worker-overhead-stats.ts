// Paired statistics of the worker-overhead benchmark (bench/worker-overhead.ts): what one request
// through each engine measured, and the medians with bootstrap intervals. No src/ imports, so both
// the page (worker-overhead-page.ts) and Node use it.

/** One request's timings as the page sees them. */
export interface RequestTiming {
  /** create() → the first chunk with text. */
  ttftMs: number;
  /** Tokens after the first ÷ the time from the first chunk with text to the last chunk. */
  decodeTokensPerS: number;
  tokens: number;
  text: string;
}

export interface OverheadPair {
  prompt: string;
  workerFirst: boolean;
  worker: RequestTiming;
  mainThread: RequestTiming;
}

/** A median with a 95 % percentile-bootstrap interval (2,000 resamples of the pairs, seeded). */
export interface Estimate {
  value: number;
  lo: number;
  hi: number;
}

export interface OverheadSummary {
  requests: number;
  /** Medians over the requests, each engine on its own. */
  worker: { ttftMs: number; decodeTokensPerS: number };
  mainThread: { ttftMs: number; decodeTokensPerS: number };
  /** Median over prompts of (worker − main-thread) time to first token, in ms. */
  ttftDiffMs: Estimate;
  /** That difference as a percentage of the main thread's median time to first token (+ = the worker is slower). */
  ttftOverPct: Estimate;
  /** 1 − the median over prompts of (worker ÷ main-thread) decode rate, in % (+ = the worker is slower). */
  decodeUnderPct: Estimate;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};

/** Paired statistics of the runs: the per-prompt differences cancel what the prompt's length and the moment's load add to both. */
export function summarize(pairs: readonly OverheadPair[]): OverheadSummary {
  const w = pairs.map((p) => p.worker);
  const l = pairs.map((p) => p.mainThread);
  const diffs = pairs.map((p) => p.worker.ttftMs - p.mainThread.ttftMs);
  const ratios = pairs.map((p) => p.worker.decodeTokensPerS / p.mainThread.decodeTokensPerS);
  const mainTtft = l.map((x) => x.ttftMs);
  const stat = {
    diff: (ix: readonly number[]) => median(ix.map((i) => diffs[i]!)),
    over: (ix: readonly number[]) => (100 * median(ix.map((i) => diffs[i]!))) / median(ix.map((i) => mainTtft[i]!)),
    under: (ix: readonly number[]) => 100 * (1 - median(ix.map((i) => ratios[i]!))),
  };
  const all = pairs.map((_, i) => i);
  // xorshift32, seeded: the interval is the same for the same runs.
  let s = 0x9e3779b9;
  const rand = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
  const boot: Record<keyof typeof stat, number[]> = { diff: [], over: [], under: [] };
  for (let b = 0; b < 2000; b++) {
    const ix = all.map(() => Math.floor(rand() * all.length));
    for (const k of Object.keys(stat) as (keyof typeof stat)[]) boot[k].push(stat[k](ix));
  }
  const est = (k: keyof typeof stat): Estimate => {
    const xs = boot[k].sort((a, b) => a - b);
    return { value: stat[k](all), lo: xs[Math.floor(0.025 * xs.length)]!, hi: xs[Math.ceil(0.975 * xs.length) - 1]! };
  };
  return {
    requests: pairs.length,
    worker: { ttftMs: median(w.map((x) => x.ttftMs)), decodeTokensPerS: median(w.map((x) => x.decodeTokensPerS)) },
    mainThread: { ttftMs: median(mainTtft), decodeTokensPerS: median(l.map((x) => x.decodeTokensPerS)) },
    ttftDiffMs: est('diff'),
    ttftOverPct: est('over'),
    decodeUnderPct: est('under'),
  };
}
