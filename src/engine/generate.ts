// Single-sequence generation over a loaded model: prefill, then one GPU-sampled token per step,
// stop on EOG / stop strings / max tokens / abort. The batched scheduler (issue 5) replaces the
// loop; the request/response shapes stay.

import { EngineError } from '../api/errors.js';
import { MAX_LOGPROBS, type SamplingParams } from '../kernels/sample.js';
import type { LoadedModel } from '../model/model.js';

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
  /**
   * How many leading prompt tokens are already in the KV cache from the previous request (their
   * positions 0..reuse-1 hold exactly these tokens): only the rest is prefilled. At most
   * promptTokens.length - 1, since the last prompt token must be fed to get the next token.
   */
  reuse?: number;
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
  /** Prompt tokens whose KV was reused instead of prefilled. */
  reusedTokens: number;
  /** The tokens whose KV is now in the cache, position by position (prompt + generated tokens fed). */
  kvTokens: number[];
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
  const { tokenizer, runner } = model;
  const promptTokens = req.promptTokens ?? tokenizer.encode(req.prompt ?? '', { addBos: tokenizer.addBos, parseSpecial: true });
  if (promptTokens.length === 0) throw new EngineError('BAD_REQUEST', 'The prompt is empty and the model adds no BOS token.');
  if (!(req.maxTokens >= 0)) throw new EngineError('BAD_REQUEST', `max_tokens must be >= 0 (got ${req.maxTokens}).`);
  const maxTokens = Math.min(req.maxTokens, runner.opts.maxContext - promptTokens.length);
  if (promptTokens.length >= runner.opts.maxContext)
    throw new EngineError('CONTEXT_OVERFLOW', `The prompt has ${promptTokens.length} tokens; the context holds ${runner.opts.maxContext}.`, {
      promptTokens: promptTokens.length,
      maxContext: runner.opts.maxContext,
    });
  const sampling = samplingParams(req);
  const tokens: number[] = [];
  const logprobs: GenerateResult['logprobs'] = [];
  const tokenLogprobs: number[] = [];
  const decoder = new TextDecoder('utf-8');
  let text = '';
  let finishReason: FinishReason = 'length';
  const stops = (req.stop ?? []).filter((s) => s.length > 0);

  const t0 = now();
  let tPrefill = t0;
  const reuse = Math.max(0, Math.min(req.reuse ?? 0, promptTokens.length - 1));
  let pos = reuse;
  let feed = promptTokens.slice(reuse);
  const kvTokens = promptTokens.slice(0, reuse);
  for (let i = 0; i < maxTokens; i++) {
    if (req.signal?.aborted) {
      finishReason = 'abort';
      break;
    }
    const r = await runner.forwardSample(feed, pos, sampling, i);
    if (i === 0) tPrefill = now();
    pos += feed.length;
    kvTokens.push(...feed);
    if (tokenizer.isEog(r.token)) {
      finishReason = 'stop';
      break;
    }
    tokens.push(r.token);
    tokenLogprobs.push(r.logprob);
    if (sampling.logprobs > 0) logprobs.push(r.topLogprobs);
    const piece = decoder.decode(tokenizer.tokenBytes(r.token), { stream: true });
    text += piece;
    req.onToken?.(r.token, piece);
    const hit = stops.map((s) => text.indexOf(s, Math.max(0, text.length - piece.length - s.length))).find((ix) => ix >= 0);
    if (hit !== undefined) {
      text = text.slice(0, hit);
      finishReason = 'stop';
      break;
    }
    feed = [r.token];
  }
  text += decoder.decode();
  const tEnd = now();
  const prefillMs = tPrefill - t0;
  const decodeMs = tEnd - tPrefill;
  return {
    promptTokens,
    tokens,
    text,
    logprobs,
    tokenLogprobs,
    reusedTokens: reuse,
    kvTokens,
    finishReason,
    timings: {
      prefillMs,
      decodeMs,
      prefillTokensPerS: prefillMs > 0 ? ((promptTokens.length - reuse) / prefillMs) * 1000 : 0,
      decodeTokensPerS: decodeMs > 0 && tokens.length > 1 ? ((tokens.length - 1) / decodeMs) * 1000 : 0,
    },
  };
}
