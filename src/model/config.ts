// Model hyperparameters from GGUF metadata for the architectures hearth runs (llama, qwen2).
// A new architecture adds its name to ARCHS with its RoPE style and tensor conventions.

import { EngineError } from '../api/errors.js';
import type { GGUFFile } from './gguf.js';
import { GGUFMeta } from './gguf.js';

export type Arch = 'llama' | 'qwen2';

const ARCHS: Record<Arch, { neox: boolean; qkvBias: boolean }> = {
  llama: { neox: false, qkvBias: false },
  qwen2: { neox: true, qkvBias: true },
};

export interface ModelConfig {
  arch: Arch;
  name: string;
  contextLength: number;
  dModel: number;
  numLayers: number;
  ffDim: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  ropeDim: number;
  ropeBase: number;
  /** Position multiplier (1 / linear scaling factor). */
  ropeFreqScale: number;
  neox: boolean;
  qkvBias: boolean;
  rmsEps: number;
  vocabSize: number;
  tiedEmbeddings: boolean;
}

export function modelConfig(file: GGUFFile): ModelConfig {
  const m = new GGUFMeta(file.metadata);
  const archName = m.str('general.architecture');
  if (!(archName in ARCHS))
    throw new EngineError('UNSUPPORTED_ARCHITECTURE', `Model architecture '${archName}' is not supported; hearth runs: ${Object.keys(ARCHS).join(', ')}.`, {
      arch: archName,
    });
  const arch = archName as Arch;
  const k = (s: string): string => `${arch}.${s}`;
  const dModel = m.num(k('embedding_length'));
  const numHeads = m.num(k('attention.head_count'));
  const numKvHeads = m.num(k('attention.head_count_kv'), numHeads);
  const headDim = m.num(k('attention.key_length'), dModel / numHeads);
  const numLayers = m.num(k('block_count'));
  const ffDim = m.num(k('feed_forward_length'));
  const positive = { dModel, numHeads, numKvHeads, headDim, numLayers, ffDim };
  for (const [name, v] of Object.entries(positive))
    if (!Number.isInteger(v) || v <= 0 || v > 1 << 20)
      throw new EngineError('BAD_MODEL_FILE', `Model hyperparameter ${name} = ${v} is not a positive integer.`, { [name]: v });
  if (numHeads % numKvHeads !== 0)
    throw new EngineError('BAD_MODEL_FILE', `head_count ${numHeads} is not a multiple of head_count_kv ${numKvHeads}.`, { numHeads, numKvHeads });
  if (headDim > 256 || headDim % 4 !== 0)
    throw new EngineError('UNSUPPORTED_ARCHITECTURE', `Head dimension ${headDim} is not supported (multiples of 4 up to 256 are).`, { headDim });
  const valueLength = m.num(k('attention.value_length'), headDim);
  if (valueLength !== headDim)
    throw new EngineError('UNSUPPORTED_ARCHITECTURE', `Different key (${headDim}) and value (${valueLength}) head sizes are not supported.`);
  const ropeDim = m.num(k('rope.dimension_count'), headDim);
  if (ropeDim > headDim || ropeDim % 2 !== 0)
    throw new EngineError('BAD_MODEL_FILE', `rope.dimension_count ${ropeDim} does not fit head dimension ${headDim}.`, { ropeDim, headDim });
  const scalingType = m.str(k('rope.scaling.type'), 'none');
  let ropeFreqScale = 1;
  if (scalingType === 'linear') ropeFreqScale = 1 / m.num(k('rope.scaling.factor'), 1);
  else if (scalingType !== 'none')
    throw new EngineError('UNSUPPORTED_ARCHITECTURE', `RoPE scaling '${scalingType}' is not supported (none, linear, and Llama 3 frequency factors are).`, {
      scalingType,
    });
  const tokens = m.strings('tokenizer.ggml.tokens');
  const embd = file.tensors.find((t) => t.name === 'token_embd.weight');
  if (!embd) throw new EngineError('BAD_MODEL_FILE', 'The model has no token_embd.weight tensor.');
  const vocabSize = embd.dims[1] ?? 0;
  if (embd.dims[0] !== dModel) throw new EngineError('BAD_MODEL_FILE', `token_embd.weight rows are ${embd.dims[0]} long but embedding_length is ${dModel}.`);
  if (tokens && tokens.length > vocabSize)
    throw new EngineError('BAD_MODEL_FILE', `The tokenizer has ${tokens.length} tokens but the embedding only ${vocabSize} rows.`);
  return {
    arch,
    name: m.str('general.name', archName),
    contextLength: m.num(k('context_length'), 2048),
    dModel,
    numLayers,
    ffDim,
    numHeads,
    numKvHeads,
    headDim,
    ropeDim,
    ropeBase: m.num(k('rope.freq_base'), 10000),
    ropeFreqScale,
    neox: ARCHS[arch].neox,
    qkvBias: ARCHS[arch].qkvBias,
    rmsEps: m.num(k('attention.layer_norm_rms_epsilon'), 1e-5),
    vocabSize,
    tiedEmbeddings: !file.tensors.some((t) => t.name === 'output.weight'),
  };
}
