// Streams GGUF tensors into GPU buffers in their GPU layout (quantized weights stay quantized),
// a chunk of whole blocks at a time, so no second full copy of the model sits in the JS heap.
// A new tensor role goes into layerTensorNames() and LayerWeights.

import { EngineError } from '../api/errors.js';
import type { GpuContext } from '../gpu/device.js';
import { storageFrom } from '../gpu/buffers.js';
import type { GpuWeight } from '../kernels/matmul.js';
import type { ByteSource } from './byte-source.js';
import type { ModelConfig } from './config.js';
import { GGML_TYPES, GGMLType, type GGUFFile, type GGUFTensorInfo } from './gguf.js';
import { dequantize, gpuLayout, repackBlocks, repackChunkBlocks } from './quant.js';

export interface LayerWeights {
  attnNorm: GPUBuffer;
  q: GpuWeight;
  k: GpuWeight;
  v: GpuWeight;
  o: GpuWeight;
  qBias?: GPUBuffer;
  kBias?: GPUBuffer;
  vBias?: GPUBuffer;
  ffnNorm: GPUBuffer;
  gate: GpuWeight;
  up: GpuWeight;
  down: GpuWeight;
}

export interface ModelWeights {
  tokEmbd: GpuWeight;
  output: GpuWeight;
  outputNorm: GPUBuffer;
  layers: LayerWeights[];
  ropeFreqs?: Float32Array;
  /** Bytes of GPU memory the weights take. */
  gpuBytes: number;
  /** Bytes of tensor data in the file. */
  fileBytes: number;
  buffers: GPUBuffer[];
}

const CHUNK_BYTES = 8 << 20;
const SYNC_EVERY_BYTES = 64 << 20;

export type LoadProgress = (loadedBytes: number, totalBytes: number) => void;

export async function loadWeights(ctx: GpuContext, file: GGUFFile, src: ByteSource, cfg: ModelConfig, onProgress?: LoadProgress): Promise<ModelWeights> {
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const need = (name: string, dims: number[]): GGUFTensorInfo => {
    const t = byName.get(name);
    if (!t) throw new EngineError('BAD_MODEL_FILE', `The model file has no tensor '${name}'.`, { tensor: name });
    const want = dims.filter((d) => d !== 1);
    const got = t.dims.filter((d) => d !== 1);
    if (want.length !== got.length || want.some((d, i) => d !== got[i]))
      throw new EngineError('BAD_MODEL_FILE', `Tensor '${name}' has shape [${t.dims.join(', ')}], expected [${dims.join(', ')}].`, {
        tensor: name,
        offset: t.fileOffset,
      });
    return t;
  };
  const { dModel: D, ffDim: FF, numHeads: H, numKvHeads: KVH, headDim: HD, vocabSize: V } = cfg;
  const plan: { info: GGUFTensorInfo; kind: 'matrix' | 'vector' }[] = [];
  const mat = (name: string, K: number, N: number): GGUFTensorInfo => {
    const t = need(name, [K, N]);
    plan.push({ info: t, kind: 'matrix' });
    return t;
  };
  const vec = (name: string, n: number): GGUFTensorInfo => {
    const t = need(name, [n]);
    plan.push({ info: t, kind: 'vector' });
    return t;
  };

  // Validate every tensor before allocating anything.
  mat('token_embd.weight', D, V);
  if (!cfg.tiedEmbeddings) mat('output.weight', D, V);
  vec('output_norm.weight', D);
  for (let i = 0; i < cfg.numLayers; i++) {
    const b = `blk.${i}.`;
    vec(b + 'attn_norm.weight', D);
    mat(b + 'attn_q.weight', D, H * HD);
    mat(b + 'attn_k.weight', D, KVH * HD);
    mat(b + 'attn_v.weight', D, KVH * HD);
    mat(b + 'attn_output.weight', H * HD, D);
    if (cfg.qkvBias) {
      vec(b + 'attn_q.bias', H * HD);
      vec(b + 'attn_k.bias', KVH * HD);
      vec(b + 'attn_v.bias', KVH * HD);
    }
    vec(b + 'ffn_norm.weight', D);
    mat(b + 'ffn_gate.weight', D, FF);
    mat(b + 'ffn_up.weight', D, FF);
    mat(b + 'ffn_down.weight', FF, D);
  }
  const ropeFreqsInfo = byName.get('rope_freqs.weight');
  if (ropeFreqsInfo) vec('rope_freqs.weight', cfg.ropeDim / 2);

  const maxBinding = ctx.limits.maxStorageBufferBindingSize;
  let totalBytes = 0;
  for (const { info, kind } of plan) {
    const ti = GGML_TYPES.get(info.type);
    if (!ti?.supported)
      throw new EngineError(
        'UNSUPPORTED_TENSOR_TYPE',
        `Tensor '${info.name}' at byte offset ${info.fileOffset} is ${ti?.name ?? `type ${info.type}`}; hearth reads F32, F16, Q4_0, Q8_0, Q4_K and Q6_K. Re-quantize the model to one of those (a Q4_K_M file works).`,
        { tensor: info.name, type: ti?.name ?? info.type, offset: info.fileOffset },
      );
    if (kind === 'matrix' && info.type !== GGMLType.F32 && info.type !== GGMLType.F16 && info.dims[0]! % ti.blockElems !== 0)
      throw new EngineError('BAD_MODEL_FILE', `Tensor '${info.name}' row length ${info.dims[0]} is not a multiple of its block size.`);
    if (kind === 'matrix' && info.dims[0]! % 8 !== 0)
      throw new EngineError('UNSUPPORTED_ARCHITECTURE', `Tensor '${info.name}' row length ${info.dims[0]} is not a multiple of 8.`, { tensor: info.name });
    const size = kind === 'matrix' ? gpuLayout(info.type, info.numElems).sizeBytes : info.numElems * 4;
    if (size > maxBinding)
      throw new EngineError(
        'MODEL_TOO_LARGE',
        `Tensor '${info.name}' needs ${size} bytes in one GPU buffer but this device binds at most ${maxBinding} bytes per buffer.`,
        { tensor: info.name, sizeBytes: size, maxStorageBufferBindingSize: maxBinding },
      );
    totalBytes += info.sizeBytes;
  }

  const buffers: GPUBuffer[] = [];
  let loaded = 0;
  let sinceSync = 0;
  let gpuBytes = 0;
  let fileBytes = 0;
  const matrices = new Map<string, GpuWeight>();
  const vectors = new Map<string, GPUBuffer>();
  try {
    for (const { info, kind } of plan) {
      fileBytes += info.sizeBytes;
      if (kind === 'vector') {
        const bytes = await readExact(src, info.fileOffset, info.sizeBytes, info.name);
        const f = dequantize(info.type, bytes, info.numElems);
        const buf = storageFrom(ctx.device, f, info.name);
        buffers.push(buf);
        gpuBytes += buf.size;
        vectors.set(info.name, buf);
      } else {
        const ti = GGML_TYPES.get(info.type)!;
        const layout = gpuLayout(info.type, info.numElems);
        // Rounded to 16 bytes: the matmul kernels also read weights as array<vec4<u32>>.
        const buf = ctx.device.createBuffer({ label: info.name, size: Math.ceil(Math.max(16, layout.sizeBytes) / 16) * 16, usage: 0x0080 | 0x0008 });
        buffers.push(buf);
        gpuBytes += buf.size;
        const totalBlocks = info.numElems / ti.blockElems;
        const mult = repackChunkBlocks(info.type);
        const chunkBlocks = Math.max(mult, Math.floor(CHUNK_BYTES / ti.blockBytes / mult) * mult);
        for (let b0 = 0; b0 < totalBlocks; b0 += chunkBlocks) {
          const n = Math.min(chunkBlocks, totalBlocks - b0);
          const bytes = await readExact(src, info.fileOffset + b0 * ti.blockBytes, n * ti.blockBytes, info.name);
          for (const w of repackBlocks(info.type, bytes, b0, totalBlocks)) ctx.device.queue.writeBuffer(buf, w.offsetBytes, w.data);
          loaded += bytes.byteLength;
          sinceSync += bytes.byteLength;
          if (sinceSync > SYNC_EVERY_BYTES) {
            // Bound the staging memory the queue holds for writes not yet executed.
            await ctx.device.queue.onSubmittedWorkDone();
            sinceSync = 0;
          }
          onProgress?.(loaded, totalBytes);
        }
        matrices.set(info.name, {
          buffer: buf,
          type: info.type,
          K: info.dims[0]!,
          N: info.numElems / info.dims[0]!,
          scaleOffsetBytes: layout.scaleOffsetBytes,
        });
      }
    }
    await ctx.device.queue.onSubmittedWorkDone();
  } catch (e) {
    for (const b of buffers) b.destroy();
    throw e;
  }
  const M = (n: string): GpuWeight => matrices.get(n)!;
  const Vb = (n: string): GPUBuffer => vectors.get(n)!;
  let ropeFreqs: Float32Array | undefined;
  if (ropeFreqsInfo) {
    const bytes = await readExact(src, ropeFreqsInfo.fileOffset, ropeFreqsInfo.sizeBytes, ropeFreqsInfo.name);
    ropeFreqs = dequantize(ropeFreqsInfo.type, bytes, ropeFreqsInfo.numElems);
  }
  return {
    tokEmbd: M('token_embd.weight'),
    output: cfg.tiedEmbeddings ? M('token_embd.weight') : M('output.weight'),
    outputNorm: Vb('output_norm.weight'),
    layers: Array.from({ length: cfg.numLayers }, (_, i) => {
      const b = `blk.${i}.`;
      return {
        attnNorm: Vb(b + 'attn_norm.weight'),
        q: M(b + 'attn_q.weight'),
        k: M(b + 'attn_k.weight'),
        v: M(b + 'attn_v.weight'),
        o: M(b + 'attn_output.weight'),
        ...(cfg.qkvBias ? { qBias: Vb(b + 'attn_q.bias'), kBias: Vb(b + 'attn_k.bias'), vBias: Vb(b + 'attn_v.bias') } : {}),
        ffnNorm: Vb(b + 'ffn_norm.weight'),
        gate: M(b + 'ffn_gate.weight'),
        up: M(b + 'ffn_up.weight'),
        down: M(b + 'ffn_down.weight'),
      };
    }),
    ...(ropeFreqs ? { ropeFreqs } : {}),
    gpuBytes,
    fileBytes,
    buffers,
  };
}

async function readExact(src: ByteSource, offset: number, length: number, tensor: string): Promise<Uint8Array> {
  const b = await src.read(offset, length);
  if (b.byteLength !== length)
    throw new EngineError('BAD_MODEL_FILE', `Tensor '${tensor}' data at byte ${offset} is cut short: read ${b.byteLength} of ${length} bytes.`, {
      tensor,
      offset,
    });
  return b;
}
