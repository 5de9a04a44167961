// One generation request over a loaded model, served by its Scheduler (so concurrent calls are
// batched together): tokenize, submit, turn sampled tokens into text as they arrive, stop on
// EOG / stop strings / max tokens / abort.

import { EngineError } from '../api/errors.js';
import { MAX_LOGPROBS, type SamplingParams } from '../kernels/sample.js';
import type { LoadedModel } from '../model/model.js';
import { fullTree, MAX_TREE_DEPTH } from '../spec/tree.js';
import { selfDraftLayers, type SpeculativeOptions } from './scheduler.js';

export interface GenerateRequest {
  prompt?: string;
  promptTokens?: number[];
  maxTokens: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Top log-probabilities to report per token (0 = none). */
  logprobs?: number;
  stop?: string[];
  signal?: AbortSignal;
  /** Speculative decoding (see SpeculativeOptions). */
  speculative?: SpeculativeOptions;
  /** Generate through end-of-generation tokens (benchmarks). */
  ignoreEog?: boolean;
  /** Called with each token and the text it completes (may be '' mid UTF-8 sequence). */
  onToken?: (token: number, text: string) => void;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerateResult {
  promptTokens: number[];
  tokens: number[];
  text: string;
  logprobs: { token: number; logprob: number }[][];
  /** Log-probability of each generated token under the untempered distribution (always filled). */
  tokenLogprobs: number[];
  /** Prompt tokens whose KV came from the prefix cache instead of being prefilled. */
  cachedTokens: number;
  /** Times the request was preempted (its KV freed and recomputed) to make room for others. */
  preemptions: number;
  finishReason: FinishReason;
  timings: { prefillMs: number; decodeMs: number; prefillTokensPerS: number; decodeTokensPerS: number };
}

const now = (): number => performance.now();

/** Sampling settings with defaults (llama.cpp's), each checked: a bad value is BAD_REQUEST with the number. */
export function samplingParams(req: Pick<GenerateRequest, 'temperature' | 'topK' | 'topP' | 'seed' | 'logprobs'>): SamplingParams {
  const s: SamplingParams = {
    temperature: req.temperature ?? 0.8,
    topK: req.topK ?? 40,
    topP: req.topP ?? 0.95,
    seed: req.seed ?? Math.floor(Math.random() * 2 ** 32),
    logprobs: req.logprobs ?? 0,
  };
  const bad = (what: string, v: number, want: string): EngineError => new EngineError('BAD_REQUEST', `${what} is ${v}; it must be ${want}.`, { [what]: v });
  if (!(s.temperature >= 0) || !Number.isFinite(s.temperature)) throw bad('temperature', s.temperature, 'a finite number >= 0 (0 is greedy)');
  if (!Number.isInteger(s.topK) || s.topK < 0) throw bad('top_k', s.topK, 'an integer >= 0 (0 is off)');
  if (!(s.topP > 0 && s.topP <= 1)) throw bad('top_p', s.topP, 'in (0, 1] (1 is off)');
  if (!Number.isInteger(s.seed) || s.seed < 0 || s.seed >= 2 ** 32) throw bad('seed', s.seed, 'an integer in [0, 2^32)');
  if (!Number.isInteger(s.logprobs) || s.logprobs < 0 || s.logprobs > MAX_LOGPROBS) throw bad('logprobs', s.logprobs, `an integer in [0, ${MAX_LOGPROBS}]`);
  return s;
}

export async function generate(model: LoadedModel, req: GenerateRequest): Promise<GenerateResult> {
  const { tokenizer } = model;
  const promptTokens = req.promptTokens ?? tokenizer.encode(req.prompt ?? '', { addBos: tokenizer.addBos, parseSpecial: true });
  const sampling = samplingParams(req);
  const logprobs: GenerateResult['logprobs'] = [];
  const tokenLogprobs: number[] = [];
  const decoder = new TextDecoder('utf-8');
  let text = '';
  let stopped = false;
  const stops = (req.stop ?? []).filter((s) => s.length > 0);

  const t0 = now();
  const out = await model.scheduler.submit({
    promptTokens,
    maxTokens: req.maxTokens,
    sampling,
    isEog: req.ignoreEog ? () => false : (t) => tokenizer.isEog(t),
    ...(req.signal ? { signal: req.signal } : {}),
    ...(req.speculative ? { speculative: checkSpeculative(req.speculative) } : {}),
    onToken: (r) => {
      tokenLogprobs.push(r.logprob);
      if (sampling.logprobs > 0) logprobs.push(r.topLogprobs);
      const piece = decoder.decode(tokenizer.tokenBytes(r.token), { stream: true });
      text += piece;
      req.onToken?.(r.token, piece);
      const hit = stops.map((s) => text.indexOf(s, Math.max(0, text.length - piece.length - s.length))).find((ix) => ix >= 0);
      if (hit === undefined) return false;
      text = text.slice(0, hit);
      stopped = true;
      return true;
    },
  });
  if (!stopped) text += decoder.decode();
  const prefillMs = out.firstTokenMs;
  const decodeMs = now() - t0 - prefillMs;
  const n = out.tokens.length;
  return {
    promptTokens,
    tokens: out.tokens,
    text,
    logprobs,
    tokenLogprobs,
    cachedTokens: out.cachedTokens,
    preemptions: out.preemptions,
    finishReason: out.finishReason,
    timings: {
      prefillMs,
      decodeMs,
      prefillTokensPerS: prefillMs > 0 ? ((promptTokens.length - out.cachedTokens) / prefillMs) * 1000 : 0,
      decodeTokensPerS: decodeMs > 0 && n > 1 ? ((n - 1) / decodeMs) * 1000 : 0,
    },
  };
}

/** A speculative-decoding setting, checked: a bad one is BAD_REQUEST with the value. */
export function checkSpeculative(o: SpeculativeOptions): SpeculativeOptions {
  const bad = (what: string, v: unknown, want: string): EngineError =>
    new EngineError('BAD_REQUEST', `speculative.${what} is ${JSON.stringify(v)}; it must be ${want}.`, { [what]: String(v) });
  const int = (v: unknown, lo: number, hi: number): boolean => Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;
  if (typeof o !== 'object' || o === null) throw bad('', o, 'an object');
  if (o.draft !== 'ngram' && o.draft !== 'model' && selfDraftLayers(String(o.draft)) === null)
    throw bad('draft', o.draft, "'ngram' (prompt lookup), 'self:N' (the model's first N blocks) or 'model' (the draft model loaded with the target)");
  if (o.depth !== undefined && !int(o.depth, 1, MAX_TREE_DEPTH)) throw bad('depth', o.depth, `an integer from 1 to ${MAX_TREE_DEPTH}`);
  if (o.ngram !== undefined && !int(o.ngram, 1, 8)) throw bad('ngram', o.ngram, 'an integer from 1 to 8');
  if (o.tree !== undefined) {
    if (typeof o.tree !== 'object' || o.tree === null) throw bad('tree', o.tree, 'an object { width, depth }');
    if (o.tree.width !== undefined && !int(o.tree.width, 1, 4)) throw bad('tree.width', o.tree.width, 'an integer from 1 to 4');
    if (o.tree.depth !== undefined && !int(o.tree.depth, 1, MAX_TREE_DEPTH)) throw bad('tree.depth', o.tree.depth, `an integer from 1 to ${MAX_TREE_DEPTH}`);
    // A model draft grows the full tree; it must fit the verifier (n-gram trees are cut to fit).
    if (o.draft !== 'ngram') fullTree(o.tree.width ?? 1, o.tree.depth ?? o.depth ?? 4);
  }
  if (o.method !== undefined && !['greedy', 'rrs', 'rrs-wo', 'spechub'].includes(o.method))
    throw bad('method', o.method, "'spechub', 'rrs', 'rrs-wo' or 'greedy'");
  if (o.method === 'spechub' && (o.tree?.width ?? 1) !== 2) throw bad('method', o.method, 'used with tree.width 2 (SpecHub drafts pairs)');
  if (o.draftTemperature !== undefined && !(typeof o.draftTemperature === 'number' && o.draftTemperature >= 0 && o.draftTemperature <= 4))
    throw bad('draftTemperature', o.draftTemperature, 'a number from 0 to 4');
  return o;
}
