// Loading a GGUF model onto a GPU: parse, configure, tokenizer, weights, runner, in that order,
// with every check done before the first GPU allocation. Extend by adding to LoadOptions.

import { EngineError } from '../api/errors.js';
import { Scheduler } from '../engine/scheduler.js';
import type { GpuContext } from '../gpu/device.js';
import type { ByteSource } from './byte-source.js';
import { modelConfig, type ModelConfig } from './config.js';
import { ModelRunner, type RunnerOptions } from './forward.js';
import { GGUFMeta, parseGGUF, type GGUFFile } from './gguf.js';
import { Tokenizer } from './tokenizer.js';
import { loadWeights, type LoadProgress, type ModelWeights } from './weights.js';

export interface LoadOptions {
  /** Longest sequence in tokens (default: the model's context length, capped at 4096). */
  maxContext?: number;
  /** Tokens per forward pass, the step's token budget; longer prompts are prefilled in chunks (default 256). */
  maxBatch?: number;
  /** Most sequences served in one step (default 32, at most maxBatch). */
  maxSeqs?: number;
  /**
   * Rows of logits one step computes: a sample per sequence plus every node of the speculative
   * draft trees (default maxSeqs + 32, at most maxBatch). Each row costs vocabSize × 4 bytes, twice
   * with a draft.
   */
  maxOutputs?: number;
  /** Tokens per KV block, a power of two (default 16; see docs/ARCHITECTURE.md for the measurement). */
  blockSize?: number;
  /**
   * Tokens the KV pool holds across all sequences (default 2 × maxContext), rounded up to whole
   * blocks and capped by the device's largest storage binding (one layer's K or V is one buffer).
   * A pool smaller than maxContext saves memory; a request whose prompt + max_tokens could outgrow
   * it is refused with OUT_OF_KV_BLOCKS.
   */
  kvCacheTokens?: number;
  onProgress?: LoadProgress;
  /**
   * GPU memory the model may take (weights, KV cache, activations); a larger model fails with
   * MODEL_TOO_LARGE before anything is allocated. WebGPU does not report device memory, so there
   * is no default budget; running out is still caught and reported as MODEL_TOO_LARGE.
   */
  gpuBudgetBytes?: number;
  /**
   * A draft model for speculative decoding (speculative.draft 'model'): a smaller GGUF with the
   * same vocabulary, loaded on the same device with the target's KV block layout (its block ids
   * mirror the target's). A different vocabulary is BAD_MODEL_FILE with the numbers.
   */
  draft?: ByteSource;
  /** Abort the load: it stops between weight chunks with ABORTED and frees what it allocated. */
  signal?: AbortSignal;
}

/** A draft model loaded beside the target. */
export interface LoadedDraft {
  file: GGUFFile;
  cfg: ModelConfig;
  weights: ModelWeights;
  runner: ModelRunner;
}

export interface LoadedModel {
  file: GGUFFile;
  cfg: ModelConfig;
  tokenizer: Tokenizer;
  weights: ModelWeights;
  runner: ModelRunner;
  /** The draft model (LoadOptions.draft), attached to the runner as its 'model' drafter. */
  draft: LoadedDraft | null;
  /** The serving loop over the runner: every request goes through it (continuous batching). */
  scheduler: Scheduler;
  chatTemplate: string | null;
  destroy(): void;
}

export async function loadModel(ctx: GpuContext, src: ByteSource, opts: LoadOptions = {}): Promise<LoadedModel> {
  const file = await parseGGUF(src);
  const cfg = modelConfig(file);
  const meta = new GGUFMeta(file.metadata);
  const tokenizer = Tokenizer.fromGGUF(meta);
  const maxContext = Math.min(opts.maxContext ?? Math.min(cfg.contextLength, 4096), cfg.contextLength);
  const maxBatch = Math.min(opts.maxBatch ?? 256, maxContext);
  if (!(maxContext > 0 && maxBatch > 0)) throw new EngineError('BAD_REQUEST', `maxContext (${maxContext}) and maxBatch (${maxBatch}) must be positive.`);
  const runnerOpts = runnerOptions(ctx, cfg, maxContext, maxBatch, opts);
  const weights = await loadWeights(ctx, file, src, cfg, {
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
    otherBytes: ModelRunner.estimateBytes(cfg, runnerOpts),
    ...(opts.gpuBudgetBytes !== undefined ? { budgetBytes: opts.gpuBudgetBytes } : {}),
  });
  let runner: ModelRunner;
  try {
    runner = new ModelRunner(ctx, cfg, weights, runnerOpts);
  } catch (e) {
    for (const b of weights.buffers) b.destroy();
    throw e;
  }
  let draft: LoadedDraft | null = null;
  if (opts.draft) {
    try {
      // The draft shares the budget with what the target took (weights, KV, activations).
      const used = weights.buffers.reduce((a, b) => a + b.size, 0) + runner.runtimeBytes;
      draft = await loadDraft(ctx, opts.draft, file, runnerOpts, opts.gpuBudgetBytes !== undefined ? opts.gpuBudgetBytes - used : undefined, opts.signal);
      runner.attachDraft(draft.runner);
    } catch (e) {
      runner.destroy();
      for (const b of weights.buffers) b.destroy();
      throw e;
    }
  }
  const tmpl = file.metadata.get('tokenizer.chat_template');
  return {
    file,
    cfg,
    tokenizer,
    weights,
    runner,
    draft,
    scheduler: new Scheduler(runner),
    chatTemplate: typeof tmpl === 'string' ? tmpl : null,
    destroy() {
      if (draft) {
        draft.runner.destroy();
        for (const b of draft.weights.buffers) b.destroy();
      }
      runner.destroy();
      for (const b of weights.buffers) b.destroy();
    },
  };
}

/** Load a draft model for `target`: the same vocabulary (checked before any GPU allocation) and KV block layout. */
async function loadDraft(
  ctx: GpuContext,
  src: ByteSource,
  target: GGUFFile,
  opts: RunnerOptions,
  budgetBytes: number | undefined,
  signal: AbortSignal | undefined,
): Promise<LoadedDraft> {
  const file = await parseGGUF(src);
  const cfg = modelConfig(file);
  const tokens = (f: GGUFFile): readonly string[] => {
    const t = f.metadata.get('tokenizer.ggml.tokens');
    return Array.isArray(t) ? (t as string[]) : [];
  };
  const want = tokens(target);
  const got = tokens(file);
  let first = -1;
  for (let i = 0; i < Math.max(want.length, got.length) && first < 0; i++) if (want[i] !== got[i]) first = i;
  if (first >= 0 || want.length === 0)
    throw new EngineError(
      'BAD_MODEL_FILE',
      `The draft model's vocabulary differs from the target's (${got.length} vs ${want.length} tokens, first difference at id ${first}); a draft must share the target's tokenizer.`,
      { draftVocab: got.length, targetVocab: want.length, firstDifference: first },
    );
  // Besides its own KV and activations, the draft holds the step's draft-logits rows.
  const otherBytes = ModelRunner.estimateBytes(cfg, opts) + opts.maxOutputs * cfg.vocabSize * 4;
  const weights = await loadWeights(ctx, file, src, cfg, { otherBytes, ...(budgetBytes !== undefined ? { budgetBytes } : {}), ...(signal ? { signal } : {}) });
  try {
    return { file, cfg, weights, runner: new ModelRunner(ctx, cfg, weights, opts) };
  } catch (e) {
    for (const b of weights.buffers) b.destroy();
    throw e;
  }
}

/** The runner's shape from the load options and the device's limits; a bad option is BAD_REQUEST with the numbers. */
function runnerOptions(ctx: GpuContext, cfg: ModelConfig, maxContext: number, maxBatch: number, opts: LoadOptions): RunnerOptions {
  const blockSize = opts.blockSize ?? 16;
  if (!(Number.isInteger(Math.log2(blockSize)) && blockSize >= 1 && blockSize <= 1024))
    throw new EngineError('BAD_REQUEST', `blockSize is ${blockSize}; it must be a power of two from 1 to 1024.`, { blockSize });
  const maxSeqs = Math.min(opts.maxSeqs ?? 32, maxBatch);
  if (!(Number.isInteger(maxSeqs) && maxSeqs > 0)) throw new EngineError('BAD_REQUEST', `maxSeqs is ${maxSeqs}; it must be a positive integer.`, { maxSeqs });
  const bytesPerToken = 4 * cfg.numKvHeads * cfg.headDim; // one layer's K (or V) row
  const limit = Math.min(ctx.limits.maxStorageBufferBindingSize, ctx.limits.maxBufferSize);
  const deviceTokens = Math.floor(limit / bytesPerToken / blockSize) * blockSize;
  const wanted = opts.kvCacheTokens ?? 2 * maxContext;
  if (!(Number.isInteger(wanted) && wanted > 0))
    throw new EngineError('BAD_REQUEST', `kvCacheTokens is ${wanted}; it must be a positive integer.`, { kvCacheTokens: wanted });
  const tokens = Math.min(Math.ceil(wanted / blockSize) * blockSize, deviceTokens);
  if (tokens < blockSize)
    throw new EngineError(
      'MODEL_TOO_LARGE',
      `One KV block of this model needs ${blockSize * bytesPerToken} bytes in one buffer; this device binds at most ${limit}.`,
      { blockSize, bytesPerToken, maxBindingBytes: limit },
    );
  // Room for up to 32 draft-tree nodes per step beside one sample per sequence (speculative decoding).
  const maxOutputs = Math.min(opts.maxOutputs ?? maxSeqs + 32, maxBatch);
  if (!(Number.isInteger(maxOutputs) && maxOutputs >= maxSeqs))
    throw new EngineError('BAD_REQUEST', `maxOutputs is ${maxOutputs}; it must be an integer from maxSeqs (${maxSeqs}) to maxBatch (${maxBatch}).`, {
      maxOutputs,
      maxSeqs,
      maxBatch,
    });
  return { maxContext, maxBatch, maxSeqs, maxOutputs, blockSize, numBlocks: tokens / blockSize };
}
