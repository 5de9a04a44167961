// Prefill and decode throughput of a loaded model, the same code in Node and in the browser.
// The prompt is synthetic (cycled token ids), decode is greedy and ignores end-of-generation.
// With `profile`, one decode step and one prefill are also timed per kernel (timestamp queries).

import type { GpuWeight } from '../kernels/matmul.js';
import type { LoadedModel } from '../model/model.js';
import { generate } from './generate.js';
import type { SpeculativeOptions } from './scheduler.js';

export interface BenchOptions {
  promptTokens: number;
  decodeTokens: number;
  profile?: boolean;
  /** Called after each decoded token with the running decode rate. */
  onProgress?: (phase: 'prefill' | 'decode', done: number, tokensPerS: number) => void;
}

export interface KernelTime {
  kernel: string;
  ms: number;
}

export interface BenchResult {
  prefill_tokens_per_s: number;
  decode_tokens_per_s: number;
  prompt_tokens: number;
  decode_tokens: number;
  /** Weight bytes a decode step reads (every matrix once; the embedding row is negligible). */
  weight_bytes_per_token: number;
  /** Matmul FLOPs per token (2 x weight elements), attention excluded. */
  flops_per_token: number;
  /** The first greedy tokens after the prompt (up to 16), to compare with a peer on the same file. */
  first_tokens: number[];
  profile?: { decode: KernelTime[]; prefill: KernelTime[] } | null;
}

/** Bytes and multiply-adds of the matrices one token passes through. */
export function modelCost(model: LoadedModel): { bytes: number; flops: number } {
  const mats: GpuWeight[] = [model.weights.output];
  for (const l of model.weights.layers) mats.push(...l.qkv.map((p) => p.w), l.o, ...l.gateUp.map((p) => p.w), l.down);
  return {
    bytes: mats.reduce((a, w) => a + w.buffer.size, 0),
    flops: mats.reduce((a, w) => a + 2 * w.N * w.K, 0),
  };
}

/** The synthetic prompt: token ids cycled through the vocabulary (peers get the same ids). */
export function benchPrompt(vocabSize: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => 3 + ((i * 7919) % (vocabSize - 3)));
}

export async function benchModel(model: LoadedModel, o: BenchOptions): Promise<BenchResult> {
  const { runner, cfg } = model;
  const prompt = benchPrompt(cfg.vocabSize, o.promptTokens);
  const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0, logprobs: 0 };
  // One sequence driven directly (no scheduler in between), so this is the raw step speed.
  const seq = runner.solo();
  try {
    // Warm-up with the whole prompt, as llama-bench warms up with its batch: compiles pipelines,
    // touches every buffer, and lets a paced readback (gpu/pacing.ts, Node on CPU adapters) learn
    // this step's time, as the decode steps' pacing learns from their first step.
    await seq.forwardSample(prompt, 0, greedy, 0);
    const t0 = performance.now();
    let r = await seq.forwardSample(prompt, 0, greedy, 0);
    const t1 = performance.now();
    o.onProgress?.('prefill', prompt.length, (prompt.length / (t1 - t0)) * 1000);
    const firstTokens = [r.token];
    let pos = prompt.length;
    const n = Math.min(o.decodeTokens, runner.opts.maxContext - pos - 1);
    for (let i = 0; i < n; i++) {
      r = await seq.forwardSample([r.token], pos, greedy, i + 1);
      if (firstTokens.length < 16) firstTokens.push(r.token);
      pos++;
      if (o.onProgress && (i % 8 === 7 || i === n - 1)) o.onProgress('decode', i + 1, ((i + 1) / (performance.now() - t1)) * 1000);
    }
    const t2 = performance.now();
    let profile: BenchResult['profile'];
    if (o.profile) {
      seq.reserve(pos + 1);
      const decode = await runner.profileStep([{ blocks: seq.blocks, tokens: [r.token], startPos: pos, sample: { sampling: greedy, counter: 0 } }]);
      const chunk = prompt.slice(0, Math.min(prompt.length, runner.opts.maxBatch));
      const prefill = await runner.profileStep([{ blocks: seq.blocks, tokens: chunk, startPos: 0, sample: { sampling: greedy, counter: 0 } }]);
      profile = decode && prefill ? { decode, prefill } : null;
    }
    const cost = modelCost(model);
    return {
      prefill_tokens_per_s: (prompt.length / (t1 - t0)) * 1000,
      decode_tokens_per_s: n > 0 ? (n / (t2 - t1)) * 1000 : 0,
      prompt_tokens: prompt.length,
      decode_tokens: n,
      weight_bytes_per_token: cost.bytes,
      flops_per_token: cost.flops,
      first_tokens: firstTokens,
      ...(o.profile ? { profile } : {}),
    };
  } finally {
    seq.release();
  }
}

export interface SpeculativeBench {
  temperature: number;
  /** Decode tok/s through the serving loop (tokens after the first ÷ time after the first), plain and speculative. */
  plain_decode_tokens_per_s: number;
  speculative_decode_tokens_per_s: number;
  speedup: number;
  /** Generated tokens per target pass while speculating (accepted drafts + 1 per verify step). */
  tokens_per_target_pass: number;
  drafted_tokens: number;
  accepted_tokens: number;
  /** Greedy: whether the speculative tokens equal the plain ones (they must). */
  identical: boolean | null;
}

/**
 * Plain then speculative decoding of the bench prompt through the scheduler (one request, max
 * tokens = decodeTokens, end-of-generation ignored), timed after the first token.
 */
export async function benchSpeculative(
  model: LoadedModel,
  o: { promptTokens: number; decodeTokens: number; speculative: SpeculativeOptions; temperature: number; seed?: number },
): Promise<SpeculativeBench> {
  const promptTokens = benchPrompt(model.cfg.vocabSize, o.promptTokens);
  const req = { promptTokens, maxTokens: o.decodeTokens, temperature: o.temperature, topK: 0, topP: 1, seed: o.seed ?? 1, ignoreEog: true };
  await generate(model, { ...req, maxTokens: 2 }); // warm-up
  const plain = await generate(model, req);
  const before = model.scheduler.stats();
  const spec = await generate(model, { ...req, speculative: o.speculative });
  const after = model.scheduler.stats();
  const steps = after.verifySteps - before.verifySteps;
  const accepted = after.acceptedDraftTokens - before.acceptedDraftTokens;
  const p = plain.timings.decodeTokensPerS;
  const s = spec.timings.decodeTokensPerS;
  return {
    temperature: o.temperature,
    plain_decode_tokens_per_s: p,
    speculative_decode_tokens_per_s: s,
    speedup: p > 0 ? s / p : 0,
    tokens_per_target_pass: steps > 0 ? (accepted + steps) / steps : 1,
    drafted_tokens: after.draftedTokens - before.draftedTokens,
    accepted_tokens: accepted,
    identical: o.temperature > 0 ? null : plain.tokens.length === spec.tokens.length && plain.tokens.every((t, i) => t === spec.tokens[i]),
  };
}
