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
}

export interface LoadedModel {
  file: GGUFFile;
  cfg: ModelConfig;
  tokenizer: Tokenizer;
  weights: ModelWeights;
  runner: ModelRunner;
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
  const tmpl = file.metadata.get('tokenizer.chat_template');
  return {
    file,
    cfg,
    tokenizer,
    weights,
    runner,
    scheduler: new Scheduler(runner),
    chatTemplate: typeof tmpl === 'string' ? tmpl : null,
    destroy() {
      runner.destroy();
      for (const b of weights.buffers) b.destroy();
    },
  };
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
  // Room for up to 32 drafted tokens per step beside one sample per sequence (speculative decoding).
  return { maxContext, maxBatch, maxSeqs, maxOutputs: Math.min(maxSeqs + 32, maxBatch), blockSize, numBlocks: tokens / blockSize };
}
