// Streams GGUF tensors into GPU buffers in their GPU layout (quantized weights stay quantized),
// a chunk of whole blocks at a time, so no second full copy of the model sits in the JS heap.
// Same-typed q|k|v and gate|up are stacked into one weight each. A new tensor role goes into
// the plan in loadWeights() and into LayerWeights.

import { EngineError } from '../api/errors.js';
import type { GpuContext } from '../gpu/device.js';
import { storageFrom } from '../gpu/buffers.js';
import type { GpuWeight } from '../kernels/matmul.js';
import type { ByteSource } from './byte-source.js';
import type { ModelConfig } from './config.js';
import { GGML_TYPES, type GGUFFile, type GGUFTensorInfo } from './gguf.js';
import { dequantize, gpuLayout, repackBlocks, repackChunkBlocks } from './quant.js';

/** One matmul filling columns [col, col + w.N) of a wider output row. */
export interface MatmulPart {
  w: GpuWeight;
  col: number;
  bias?: GPUBuffer;
}

export interface LayerWeights {
  attnNorm: GPUBuffer;
  /** Q, K and V rows in one weight when they share a type (one dispatch), else three parts. */
  qkv: MatmulPart[];
  o: GpuWeight;
  ffnNorm: GPUBuffer;
  /** Gate and up rows in one weight when they share a type, else two parts. */
  gateUp: MatmulPart[];
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

export interface WeightLoadOptions {
  onProgress?: LoadProgress;
  /** GPU bytes the caller will allocate besides the weights (KV cache, activations), for the budget check. */
  otherBytes?: number;
  /** Refuse, before any allocation, a model whose weights + otherBytes exceed this (MODEL_TOO_LARGE). */
  budgetBytes?: number;
  /** Stop between chunks: ABORTED with the bytes uploaded so far, every buffer freed. */
  signal?: AbortSignal;
}

export async function loadWeights(ctx: GpuContext, file: GGUFFile, src: ByteSource, cfg: ModelConfig, opts: WeightLoadOptions = {}): Promise<ModelWeights> {
  const onProgress = opts.onProgress;
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
  // A plan entry is one GPU buffer: a single tensor, or several same-typed matrices stacked by
  // rows (q|k|v, gate|up) so one dispatch computes them all, or biases concatenated to match.
  interface Entry {
    key: string;
    infos: GGUFTensorInfo[];
    kind: 'matrix' | 'vector';
  }
  const plan: Entry[] = [];
  const mat = (name: string, K: number, N: number): GGUFTensorInfo => {
    const t = need(name, [K, N]);
    plan.push({ key: name, infos: [t], kind: 'matrix' });
    return t;
  };
  const vec = (name: string, n: number): GGUFTensorInfo => {
    const t = need(name, [n]);
    plan.push({ key: name, infos: [t], kind: 'vector' });
    return t;
  };
  /** Stack matrices into one entry when their types match and chunked repacking allows it. */
  const stack = (key: string, parts: [string, number, number][]): void => {
    const infos = parts.map(([n, K, N]) => need(n, [K, N]));
    const t0 = infos[0]!.type;
    const info = GGML_TYPES.get(t0);
    const stackable = info?.supported === true && infos.every((t) => t.type === t0 && (t.numElems / info.blockElems) % repackChunkBlocks(t0) === 0);
    if (stackable) plan.push({ key, infos, kind: 'matrix' });
    else for (const t of infos) plan.push({ key: t.name, infos: [t], kind: 'matrix' });
  };

  // Validate every tensor before allocating anything.
  mat('token_embd.weight', D, V);
  if (!cfg.tiedEmbeddings) mat('output.weight', D, V);
  vec('output_norm.weight', D);
  for (let i = 0; i < cfg.numLayers; i++) {
    const b = `blk.${i}.`;
    vec(b + 'attn_norm.weight', D);
    stack(b + 'qkv', [
      [b + 'attn_q.weight', D, H * HD],
      [b + 'attn_k.weight', D, KVH * HD],
      [b + 'attn_v.weight', D, KVH * HD],
    ]);
    mat(b + 'attn_output.weight', H * HD, D);
    if (cfg.qkvBias)
      plan.push({
        key: b + 'qkv.bias',
        infos: [need(b + 'attn_q.bias', [H * HD]), need(b + 'attn_k.bias', [KVH * HD]), need(b + 'attn_v.bias', [KVH * HD])],
        kind: 'vector',
      });
    vec(b + 'ffn_norm.weight', D);
    stack(b + 'gate_up', [
      [b + 'ffn_gate.weight', D, FF],
      [b + 'ffn_up.weight', D, FF],
    ]);
    mat(b + 'ffn_down.weight', FF, D);
  }
  const ropeFreqsInfo = byName.get('rope_freqs.weight');
  if (ropeFreqsInfo) vec('rope_freqs.weight', cfg.ropeDim / 2);

  const maxBinding = ctx.limits.maxStorageBufferBindingSize;
  let totalBytes = 0;
  let gpuNeed = 0;
  for (const { key, infos, kind } of plan) {
    for (const info of infos) {
      const ti = GGML_TYPES.get(info.type);
      if (!ti?.supported)
        throw new EngineError(
          'UNSUPPORTED_TENSOR_TYPE',
          `Tensor '${info.name}' at byte offset ${info.fileOffset} is ${ti?.name ?? `type ${info.type}`}; hearth reads F32, F16, Q4_0, Q8_0, Q4_K and Q6_K. Re-quantize the model to one of those (a Q4_K_M file works).`,
          { tensor: info.name, type: ti?.name ?? info.type, offset: info.fileOffset },
        );
      if (kind === 'matrix' && info.dims[0]! % 8 !== 0)
        throw new EngineError('UNSUPPORTED_ARCHITECTURE', `Tensor '${info.name}' row length ${info.dims[0]} is not a multiple of 8.`, { tensor: info.name });
      totalBytes += info.sizeBytes;
    }
    const elems = infos.reduce((a, t) => a + t.numElems, 0);
    const size = kind === 'matrix' ? gpuLayout(infos[0]!.type, elems).sizeBytes : elems * 4;
    gpuNeed += Math.ceil(size / 16) * 16;
    if (size > maxBinding)
      throw new EngineError(
        'MODEL_TOO_LARGE',
        `Tensor '${infos.length === 1 ? infos[0]!.name : key}' needs ${size} bytes in one GPU buffer but this device binds at most ${maxBinding} bytes per buffer.`,
        { tensor: infos[0]!.name, sizeBytes: size, maxStorageBufferBindingSize: maxBinding },
      );
  }

  const needBytes = gpuNeed + (opts.otherBytes ?? 0);
  if (opts.budgetBytes !== undefined && needBytes > opts.budgetBytes)
    throw new EngineError(
      'MODEL_TOO_LARGE',
      `The model needs ${needBytes} bytes of GPU memory (${gpuNeed} for weights, ${opts.otherBytes ?? 0} for the KV cache and activations) but the budget is ${opts.budgetBytes}. Use a smaller quantization, a shorter context (maxContext) or a larger budget.`,
      { neededBytes: needBytes, weightBytes: gpuNeed, otherBytes: opts.otherBytes ?? 0, budgetBytes: opts.budgetBytes },
    );

  const signal = opts.signal;
  const checkAborted = (): void => {
    if (signal?.aborted)
      throw new EngineError('ABORTED', `Loading the model was aborted after ${loaded} of ${totalBytes} bytes of weights.`, { loadedBytes: loaded, totalBytes });
  };
  const buffers: GPUBuffer[] = [];
  let loaded = 0;
  let sinceSync = 0;
  let gpuBytes = 0;
  let fileBytes = 0;
  const matrices = new Map<string, GpuWeight>();
  const vectors = new Map<string, GPUBuffer>();
  checkAborted();
  ctx.device.pushErrorScope('out-of-memory');
  let scopeOpen = true;
  try {
    for (const { key, infos, kind } of plan) {
      checkAborted();
      for (const t of infos) fileBytes += t.sizeBytes;
      if (kind === 'vector') {
        const parts: Float32Array[] = [];
        for (const t of infos) parts.push(dequantize(t.type, await readExact(src, t.fileOffset, t.sizeBytes, t.name), t.numElems));
        const f = new Float32Array(parts.reduce((a, v) => a + v.length, 0));
        let o = 0;
        for (const v of parts) {
          f.set(v, o);
          o += v.length;
        }
        const buf = storageFrom(ctx.device, f, key);
        buffers.push(buf);
        gpuBytes += buf.size;
        vectors.set(key, buf);
        continue;
      }
      const type = infos[0]!.type;
      const ti = GGML_TYPES.get(type)!;
      const elems = infos.reduce((a, t) => a + t.numElems, 0);
      const layout = gpuLayout(type, elems);
      // Rounded to 16 bytes: the matmul kernels also read weights as array<vec4<u32>>.
      const buf = ctx.device.createBuffer({ label: key, size: Math.ceil(Math.max(16, layout.sizeBytes) / 16) * 16, usage: 0x0080 | 0x0008 });
      buffers.push(buf);
      gpuBytes += buf.size;
      const totalBlocks = elems / ti.blockElems;
      const mult = repackChunkBlocks(type);
      const chunkBlocks = Math.max(mult, Math.floor(CHUNK_BYTES / ti.blockBytes / mult) * mult);
      let blockBase = 0;
      for (const info of infos) {
        const tensorBlocks = info.numElems / ti.blockElems;
        for (let b0 = 0; b0 < tensorBlocks; b0 += chunkBlocks) {
          checkAborted();
          const n = Math.min(chunkBlocks, tensorBlocks - b0);
          const bytes = await readExact(src, info.fileOffset + b0 * ti.blockBytes, n * ti.blockBytes, info.name);
          for (const w of repackBlocks(type, bytes, blockBase + b0, totalBlocks)) ctx.device.queue.writeBuffer(buf, w.offsetBytes, w.data);
          loaded += bytes.byteLength;
          sinceSync += bytes.byteLength;
          if (sinceSync > SYNC_EVERY_BYTES) {
            // Bound the staging memory the queue holds for writes not yet executed.
            await ctx.device.queue.onSubmittedWorkDone();
            sinceSync = 0;
          }
          onProgress?.(loaded, totalBytes);
        }
        blockBase += tensorBlocks;
      }
      const K = infos[0]!.dims[0]!;
      matrices.set(key, { buffer: buf, type, K, N: elems / K, scaleOffsetBytes: layout.scaleOffsetBytes });
    }
    await ctx.device.queue.onSubmittedWorkDone();
    scopeOpen = false;
    const oom = await ctx.device.popErrorScope();
    if (oom)
      throw new EngineError('MODEL_TOO_LARGE', `The GPU ran out of memory loading the weights (${needBytes} bytes needed): ${oom.message}`, {
        neededBytes: needBytes,
        weightBytes: gpuNeed,
      });
  } catch (e) {
    for (const b of buffers) b.destroy();
    // A scope left open would capture the device's later errors (after an abort, a read that fails).
    if (scopeOpen) await ctx.device.popErrorScope().catch(() => undefined);
    throw e;
  }
  const M = (n: string): GpuWeight => matrices.get(n)!;
  const Vb = (n: string): GPUBuffer => vectors.get(n)!;
  /** The parts of a stacked entry: one weight, or the separate tensors at their column offsets. */
  const parts = (key: string, names: string[]): MatmulPart[] => {
    const whole = matrices.get(key);
    if (whole) return [{ w: whole, col: 0 }];
    let col = 0;
    return names.map((n) => {
      const w = M(n);
      const p = { w, col };
      col += w.N;
      return p;
    });
  };
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
      const qkv = parts(b + 'qkv', [b + 'attn_q.weight', b + 'attn_k.weight', b + 'attn_v.weight']);
      // The bias is one concatenated vector: the whole of it for a stacked weight, else a slice each.
      if (cfg.qkvBias) {
        const bias = Vb(b + 'qkv.bias');
        if (qkv.length === 1) qkv[0]!.bias = bias;
        else for (const p of qkv) p.bias = bias; // the matmul reads bias[col + n]
      }
      return {
        attnNorm: Vb(b + 'attn_norm.weight'),
        qkv,
        o: M(b + 'attn_output.weight'),
        ffnNorm: Vb(b + 'ffn_norm.weight'),
        gateUp: parts(b + 'gate_up', [b + 'ffn_gate.weight', b + 'ffn_up.weight']),
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
