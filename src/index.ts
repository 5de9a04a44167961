// hearth's public API for pages and Node: load a GGUF model onto a WebGPU device and generate.
// Extend by exporting new entry points here; everything else is internal.

export { EngineError, type ErrorCode, type ErrorDetails } from './api/errors.js';
export { acquireBrowserDevice, describeAdapter, type GpuContext, type AdapterSummary } from './gpu/device.js';
export { bufferSource, blobSource, type ByteSource } from './model/byte-source.js';
export { loadModel, type LoadedModel, type LoadOptions } from './model/model.js';
export { generate, type GenerateRequest, type GenerateResult, type FinishReason } from './engine/generate.js';
export { benchModel, type BenchOptions, type BenchResult } from './engine/bench.js';
export { Tokenizer } from './model/tokenizer.js';
export type { ModelConfig } from './model/config.js';
export { LocalEngine, type LocalEngineOptions } from './engine/local-engine.js';
export type { Engine, ChatCompletions, Completions } from './api/engine.js';
export type * from './api/types.js';
export { renderChatTemplate, renderChatML, type ChatMessage } from './model/chat-template.js';
export { createEngine } from './worker/engine-client.js';
export {
  SemanticCache,
  hashContext,
  samplingKey,
  DEFAULT_THRESHOLDS,
  type CacheKey,
  type CacheEntry,
  type CacheHit,
  type SemanticCacheOptions,
} from './cache/semantic-cache.js';
export { LexicalEmbedder } from './cache/lexical.js';
export { transformersEmbedder, type Embedder, type FeatureExtractionPipeline } from './cache/embedder.js';
export { MemoryStore, type CacheStore } from './cache/store.js';
export { IdbStore } from './cache/store-idb.js';
export { loadEmbeddingModel } from './model/bert.js';
export { Scheduler, type SchedulerStats } from './engine/scheduler.js';
