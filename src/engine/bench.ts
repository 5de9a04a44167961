// Prefill and decode throughput of a loaded model, the same code in Node and in the browser.
// The prompt is synthetic (cycled token ids), decode is greedy and ignores end-of-generation.

import type { LoadedModel } from '../model/model.js';

export interface BenchOptions {
  promptTokens: number;
  decodeTokens: number;
}

export interface BenchResult {
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  prompt_tokens: number;
  decode_tokens: number;
}

export async function benchModel(model: LoadedModel, o: BenchOptions): Promise<BenchResult> {
  const { runner, cfg } = model;
  const prompt = Array.from({ length: o.promptTokens }, (_, i) => 3 + ((i * 7919) % (cfg.vocabSize - 3)));
  const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0, logprobs: 0 };
  // Warm-up: compile pipelines and touch every buffer once.
  await runner.forwardSample(prompt.slice(0, Math.min(8, prompt.length)), 0, greedy, 0);
  const t0 = performance.now();
  let r = await runner.forwardSample(prompt, 0, greedy, 0);
  const t1 = performance.now();
  let pos = prompt.length;
  const n = Math.min(o.decodeTokens, runner.opts.maxContext - pos);
  for (let i = 0; i < n; i++) {
    r = await runner.forwardSample([r.token], pos, greedy, i + 1);
    pos++;
  }
  const t2 = performance.now();
  return {
    prefill_tokens_per_s: (prompt.length / (t1 - t0)) * 1000,
    decode_tokens_per_s: n > 0 ? (n / (t2 - t1)) * 1000 : 0,
    prompt_tokens: prompt.length,
    decode_tokens: n,
  };
}
