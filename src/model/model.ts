// Loading a GGUF model onto a GPU: parse, configure, tokenizer, weights, runner, in that order,
// with every check done before the first GPU allocation. Extend by adding to LoadOptions.

import { EngineError } from '../api/errors.js';
import type { GpuContext } from '../gpu/device.js';
import type { ByteSource } from './byte-source.js';
import { modelConfig, type ModelConfig } from './config.js';
import { ModelRunner } from './forward.js';
import { GGUFMeta, parseGGUF, type GGUFFile } from './gguf.js';
import { Tokenizer } from './tokenizer.js';
import { loadWeights, type LoadProgress, type ModelWeights } from './weights.js';

export interface LoadOptions {
  /** KV cache length (default: the model's context length, capped at 4096). */
  maxContext?: number;
  /** Tokens per forward pass; longer prompts are prefilled in chunks (default 256). */
  maxBatch?: number;
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
  const weights = await loadWeights(ctx, file, src, cfg, {
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    otherBytes: ModelRunner.estimateBytes(cfg, { maxContext, maxBatch }),
    ...(opts.gpuBudgetBytes !== undefined ? { budgetBytes: opts.gpuBudgetBytes } : {}),
  });
  let runner: ModelRunner;
  try {
    runner = new ModelRunner(ctx, cfg, weights, { maxContext, maxBatch });
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
    chatTemplate: typeof tmpl === 'string' ? tmpl : null,
    destroy() {
      runner.destroy();
      for (const b of weights.buffers) b.destroy();
    },
  };
}
