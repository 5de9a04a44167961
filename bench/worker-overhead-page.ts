// The page side of the worker-overhead benchmark (bench/worker-overhead.ts, and the browser spec that
// keeps it working): the same greedy streamed completions through createEngine() (the module worker)
// and through a LocalEngine on the page's main thread, both loaded at once in one page, each prompt
// through both back to back with the order alternating, so drifting machine load hits both alike and
// every prompt is its own control. Imported by the page through Vite, never by Node.

import { createEngine } from '../src/worker/engine-client.js';
import { LocalEngine } from '../src/engine/local-engine.js';
import { acquireBrowserDevice } from '../src/gpu/device.js';
import { blobSource } from '../src/model/byte-source.js';
import type { Engine } from '../src/api/engine.js';
import { summarize, type OverheadPair, type OverheadSummary, type RequestTiming } from './worker-overhead-stats.js';

export { summarize };
export type { OverheadPair, OverheadSummary, RequestTiming };

export interface OverheadOptions {
  /** The model's URL on the page's origin. */
  url: string;
  prompts: string[];
  maxTokens: number;
}

async function timed(engine: Engine, prompt: string, maxTokens: number): Promise<RequestTiming> {
  const t0 = performance.now();
  let first: number | null = null;
  let last = 0;
  let tokens = 0;
  let text = '';
  const stream = await engine.completions.create({ prompt, max_tokens: maxTokens, temperature: 0, stream: true });
  for await (const c of stream) {
    const ms = performance.now() - t0;
    const piece = c.choices[0]?.text ?? '';
    if (piece !== '') first ??= ms;
    text += piece;
    // The last chunk (finish reason, usage) leaves as soon as the last token is decoded.
    if (c.usage) {
      tokens = c.usage.completion_tokens;
      last = ms;
    }
  }
  if (first === null) throw new Error(`"${prompt}" produced no text`);
  return { ttftMs: first, decodeTokensPerS: ((tokens - 1) / (last - first)) * 1000, tokens, text };
}

/** Load the model into both engines, warm both up, then run every prompt through both. */
export async function measureWorkerOverhead(o: OverheadOptions): Promise<{ pairs: OverheadPair[]; summary: OverheadSummary }> {
  const blob = await (await fetch(o.url)).blob();
  const worker = await createEngine();
  const local = await LocalEngine.load(await acquireBrowserDevice(), blobSource(blob));
  try {
    await worker.load(blob);
    // Pipelines and caches, once each.
    await timed(worker, 'Hello there', o.maxTokens);
    await timed(local, 'Hello there', o.maxTokens);
    const pairs: OverheadPair[] = [];
    for (const [i, prompt] of o.prompts.entries()) {
      const workerFirst = i % 2 === 0;
      const a = await timed(workerFirst ? worker : local, prompt, o.maxTokens);
      const b = await timed(workerFirst ? local : worker, prompt, o.maxTokens);
      pairs.push({ prompt, workerFirst, worker: workerFirst ? a : b, mainThread: workerFirst ? b : a });
    }
    return { pairs, summary: summarize(pairs) };
  } finally {
    worker.terminate();
    await local.unload();
  }
}
