// Sentence-embedding encoders from GGUF (llama.cpp's `bert` architecture: all-MiniLM-L6-v2, bge-small, ...) on
// hearth's kernels: config, weight upload, the encoder pass and the Embedder. A new encoder variant adds its tensors here.

import { assert, EngineError } from '../api/errors.js';
import { mapRead, type GpuContext } from '../gpu/device.js';
import { COPY_DST, MAP_READ, StepUniform, storageBuffer, storageFrom } from '../gpu/buffers.js';
import { Add } from '../kernels/elementwise.js';
import { EncoderAttention } from '../kernels/encoder-attention.js';
import { Gelu } from '../kernels/gelu.js';
import { LayerNorm } from '../kernels/layer-norm.js';
import { GatherRows, Matmul, type GpuWeight } from '../kernels/matmul.js';
import { Pool, type PoolMode } from '../kernels/pool.js';
import type { ByteSource } from './byte-source.js';
import { GGML_TYPES, GGMLType, GGUFMeta, parseGGUF, type GGUFFile, type GGUFTensorInfo } from './gguf.js';
import { dequantize, gpuLayout, repackTensor } from './quant.js';
import { Tokenizer } from './tokenizer.js';

/** The interface the semantic cache consumes (src/cache); BertEmbedder satisfies it structurally. */
export interface Embedder {
  readonly id: string;
  readonly dim: number;
  embed(texts: readonly string[]): Promise<Float32Array[]>;
}

export interface BertConfig {
  dModel: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
  ffDim: number;
  /** Rows of position_embd: the longest input, [CLS] and [SEP] included. */
  contextLength: number;
  eps: number;
  pooling: PoolMode;
  vocabSize: number;
  name: string;
}

const POOLING: Record<number, PoolMode> = { 1: 'mean', 2: 'cls', 3: 'last' };

/** Hyperparameters of a `bert` GGUF, as llama.cpp reads them (bert.* keys). Throws EngineError on what hearth cannot run. */
export function bertConfig(file: GGUFFile): BertConfig {
  const meta = new GGUFMeta(file.metadata);
  const arch = meta.str('general.architecture');
  if (arch !== 'bert')
    throw new EngineError(
      'UNSUPPORTED_ARCHITECTURE',
      `The embedding model is '${arch}'; hearth's embedder runs the 'bert' architecture (all-MiniLM, bge, e5 and other BERT encoders).`,
      { architecture: arch },
    );
  const k = (s: string): string => `bert.${s}`;
  const dModel = meta.num(k('embedding_length'));
  const numHeads = meta.num(k('attention.head_count'));
  const numKvHeads = meta.num(k('attention.head_count_kv'), numHeads);
  const cfg: BertConfig = {
    dModel,
    numLayers: meta.num(k('block_count')),
    numHeads,
    headDim: dModel / numHeads,
    ffDim: meta.num(k('feed_forward_length')),
    contextLength: meta.num(k('context_length')),
    eps: meta.num(k('attention.layer_norm_epsilon')),
    pooling: 'mean',
    vocabSize: meta.strings('tokenizer.ggml.tokens')?.length ?? 0,
    name: meta.str('general.name', ''),
  };
  for (const [key, v] of Object.entries({ dModel, numLayers: cfg.numLayers, numHeads, ffDim: cfg.ffDim, contextLength: cfg.contextLength }))
    if (!Number.isInteger(v) || v <= 0)
      throw new EngineError('BAD_MODEL_FILE', `bert hyperparameter ${key} is ${v}; it must be a positive integer.`, { [key]: v });
  if (!Number.isInteger(cfg.headDim) || cfg.headDim > 256 || numKvHeads !== numHeads)
    throw new EngineError(
      'UNSUPPORTED_ARCHITECTURE',
      `bert with ${dModel} dims over ${numHeads} heads (${numKvHeads} KV heads) is not supported: heads must divide the width into at most 256 dims each, with as many KV heads as query heads.`,
      { dModel, numHeads, numKvHeads },
    );
  if (!(cfg.eps >= 0)) throw new EngineError('BAD_MODEL_FILE', `bert.attention.layer_norm_epsilon is ${cfg.eps}.`, { eps: cfg.eps });
  if (meta.bool(k('attention.causal'), false))
    throw new EngineError('UNSUPPORTED_ARCHITECTURE', 'This bert file asks for causal attention; hearth embeds with bidirectional attention only.', {});
  // Absent: llama.cpp pools nothing and returns per-token vectors; a sentence embedder needs one, and mean is what
  // sentence-transformers models use, so hearth takes mean.
  const pt = meta.num(k('pooling_type'), 1);
  const pooling = POOLING[pt];
  if (!pooling)
    throw new EngineError(
      'UNSUPPORTED_ARCHITECTURE',
      `bert.pooling_type ${pt} is not supported; hearth pools with mean (1), cls (2) or last (3). (0 = none gives per-token vectors, 4 = rank is a reranker.)`,
      { poolingType: pt },
    );
  cfg.pooling = pooling;
  return cfg;
}

/** One weight on the GPU plus, when q|k|v could not be stacked (types differ), the column it fills. */
interface Part {
  w: GpuWeight;
  col: number;
}

interface BertLayerWeights {
  qkv: Part[];
  qkvBias: GPUBuffer;
  o: GpuWeight;
  oBias: GPUBuffer;
  attnNormW: GPUBuffer;
  attnNormB: GPUBuffer;
  up: GpuWeight;
  upBias: GPUBuffer;
  down: GpuWeight;
  downBias: GPUBuffer;
  outNormW: GPUBuffer;
  outNormB: GPUBuffer;
}

interface BertWeights {
  tokEmbd: GpuWeight;
  /** position_embd[p] + token_types[0], one f32 row per position (token types are always 0, as in llama.cpp). */
  posType: GpuWeight;
  embNormW: GPUBuffer;
  embNormB: GPUBuffer;
  layers: BertLayerWeights[];
  buffers: GPUBuffer[];
  gpuBytes: number;
}

async function loadBertWeights(ctx: GpuContext, file: GGUFFile, src: ByteSource, cfg: BertConfig): Promise<BertWeights> {
  const byName = new Map(file.tensors.map((t) => [t.name, t]));
  const { dModel: D, ffDim: FF, vocabSize: V, contextLength: C } = cfg;
  const need = (name: string, dims: number[], matrix: boolean): GGUFTensorInfo => {
    const t = byName.get(name);
    if (!t) throw new EngineError('BAD_MODEL_FILE', `The embedding model file has no tensor '${name}'.`, { tensor: name });
    const got = t.dims.filter((d, i) => i === 0 || d !== 1);
    const want = dims.filter((d, i) => i === 0 || d !== 1);
    if (got.length !== want.length || got.some((d, i) => d !== want[i]))
      throw new EngineError('BAD_MODEL_FILE', `Tensor '${name}' has shape [${t.dims.join(', ')}], expected [${dims.join(', ')}].`, { tensor: name });
    const ti = GGML_TYPES.get(t.type);
    if (!ti?.supported)
      throw new EngineError(
        'UNSUPPORTED_TENSOR_TYPE',
        `Tensor '${name}' is ${ti?.name ?? `type ${t.type}`}; hearth reads F32, F16, Q4_0, Q8_0, Q4_K and Q6_K.`,
        { tensor: name, type: ti?.name ?? t.type },
      );
    if (matrix && t.dims[0]! % 8 !== 0)
      throw new EngineError('UNSUPPORTED_ARCHITECTURE', `Tensor '${name}' row length ${t.dims[0]} is not a multiple of 8.`, { tensor: name });
    return t;
  };
  // Validate every tensor before reading or allocating anything.
  const plan = {
    tok: need('token_embd.weight', [D, V], true),
    pos: need('position_embd.weight', [D, C], false),
    types: byName.has('token_types.weight') ? need('token_types.weight', [D, byName.get('token_types.weight')!.dims[1] ?? 1], false) : undefined,
    embNormW: need('token_embd_norm.weight', [D], false),
    embNormB: need('token_embd_norm.bias', [D], false),
  };
  const L = Array.from({ length: cfg.numLayers }, (_, i) => {
    const b = `blk.${i}.`;
    const m = (n: string, K: number, N: number): GGUFTensorInfo => need(b + n, [K, N], true);
    const v = (n: string, len: number): GGUFTensorInfo => need(b + n, [len], false);
    return {
      q: m('attn_q.weight', D, D),
      k: m('attn_k.weight', D, D),
      v: m('attn_v.weight', D, D),
      qb: v('attn_q.bias', D),
      kb: v('attn_k.bias', D),
      vb: v('attn_v.bias', D),
      o: m('attn_output.weight', D, D),
      ob: v('attn_output.bias', D),
      anw: v('attn_output_norm.weight', D),
      anb: v('attn_output_norm.bias', D),
      up: m('ffn_up.weight', D, FF),
      upb: v('ffn_up.bias', FF),
      down: m('ffn_down.weight', FF, D),
      downb: v('ffn_down.bias', D),
      onw: v('layer_output_norm.weight', D),
      onb: v('layer_output_norm.bias', D),
    };
  });

  const buffers: GPUBuffer[] = [];
  let gpuBytes = 0;
  const read = async (t: GGUFTensorInfo): Promise<Uint8Array> => {
    const bytes = await src.read(t.fileOffset, t.sizeBytes);
    if (bytes.byteLength !== t.sizeBytes)
      throw new EngineError(
        'BAD_MODEL_FILE',
        `Tensor '${t.name}' data at byte ${t.fileOffset} is cut short: read ${bytes.byteLength} of ${t.sizeBytes} bytes.`,
        {
          tensor: t.name,
          offset: t.fileOffset,
        },
      );
    return bytes;
  };
  const track = (buf: GPUBuffer): GPUBuffer => {
    buffers.push(buf);
    gpuBytes += buf.size;
    return buf;
  };
  const f32 = async (t: GGUFTensorInfo): Promise<Float32Array> => dequantize(t.type, await read(t), t.numElems);
  const vec = async (...ts: GGUFTensorInfo[]): Promise<GPUBuffer> => {
    const parts = await Promise.all(ts.map(f32));
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return track(storageFrom(ctx.device, out, ts[0]!.name));
  };
  /** Same-typed matrices stacked by rows into one GPU weight (their GGUF blocks concatenated, then repacked). */
  const stacked = async (ts: GGUFTensorInfo[]): Promise<GpuWeight> => {
    const type = ts[0]!.type;
    const datas = await Promise.all(ts.map(read));
    const bytes = new Uint8Array(datas.reduce((a, d) => a + d.length, 0));
    let o = 0;
    for (const d of datas) {
      bytes.set(d, o);
      o += d.length;
    }
    const elems = ts.reduce((a, t) => a + t.numElems, 0);
    const packed = repackTensor(type, bytes, elems);
    const buf = track(ctx.device.createBuffer({ label: ts[0]!.name, size: Math.ceil(Math.max(16, packed.byteLength) / 16) * 16, usage: 0x0080 | COPY_DST }));
    ctx.device.queue.writeBuffer(buf, 0, packed);
    const K = ts[0]!.dims[0]!;
    return { buffer: buf, type, K, N: elems / K, scaleOffsetBytes: gpuLayout(type, elems).scaleOffsetBytes };
  };

  ctx.device.pushErrorScope('out-of-memory');
  let scopeOpen = true;
  try {
    const pos = await f32(plan.pos);
    const typeRow = plan.types ? (await f32(plan.types)).subarray(0, D) : new Float32Array(D);
    const posType = new Float32Array(C * D);
    for (let p = 0; p < C; p++) for (let i = 0; i < D; i++) posType[p * D + i] = pos[p * D + i]! + typeRow[i]!;
    const posBuf = track(storageFrom(ctx.device, posType, 'position_embd+token_types[0]'));
    const weights: BertWeights = {
      tokEmbd: await stacked([plan.tok]),
      posType: { buffer: posBuf, type: GGMLType.F32, K: D, N: C, scaleOffsetBytes: 0 },
      embNormW: await vec(plan.embNormW),
      embNormB: await vec(plan.embNormB),
      layers: [],
      buffers,
      gpuBytes: 0,
    };
    for (const l of L) {
      const sameType = l.q.type === l.k.type && l.k.type === l.v.type;
      const qkv: Part[] = sameType
        ? [{ w: await stacked([l.q, l.k, l.v]), col: 0 }]
        : [
            { w: await stacked([l.q]), col: 0 },
            { w: await stacked([l.k]), col: D },
            { w: await stacked([l.v]), col: 2 * D },
          ];
      weights.layers.push({
        qkv,
        qkvBias: await vec(l.qb, l.kb, l.vb),
        o: await stacked([l.o]),
        oBias: await vec(l.ob),
        attnNormW: await vec(l.anw),
        attnNormB: await vec(l.anb),
        up: await stacked([l.up]),
        upBias: await vec(l.upb),
        down: await stacked([l.down]),
        downBias: await vec(l.downb),
        outNormW: await vec(l.onw),
        outNormB: await vec(l.onb),
      });
    }
    await ctx.device.queue.onSubmittedWorkDone();
    scopeOpen = false;
    const oom = await ctx.device.popErrorScope();
    if (oom) throw new EngineError('MODEL_TOO_LARGE', `The GPU ran out of memory loading the embedding model: ${oom.message}`, { gpuBytes });
    weights.gpuBytes = gpuBytes;
    return weights;
  } catch (e) {
    for (const b of buffers) b.destroy();
    // A scope left open would capture the device's later errors (after a read that fails).
    if (scopeOpen) await ctx.device.popErrorScope().catch(() => undefined);
    throw e;
  }
}

/** The dispatches of one encoder pass over up to maxTokens tokens, built once (bind groups never change). */
class BertRunner {
  readonly step: StepUniform;
  readonly tokIds: GPUBuffer;
  readonly out: GPUBuffer;
  private readonly ops: { encode(pass: GPUComputePassEncoder, n: number): void }[] = [];
  private readonly pool: Pool;
  readonly buffers: GPUBuffer[] = [];

  constructor(ctx: GpuContext, cfg: BertConfig, w: BertWeights, maxTokens: number) {
    const { dModel: D, ffDim: FF } = cfg;
    const dev = ctx.device;
    const buf = (elems: number, label: string): GPUBuffer => {
      const b = storageBuffer(dev, elems * 4, label);
      this.buffers.push(b);
      return b;
    };
    this.step = new StepUniform(dev);
    this.tokIds = buf(maxTokens, 'bert.tokIds'); // [T] u32
    const posIds = storageFrom(
      dev,
      Uint32Array.from({ length: maxTokens }, (_, i) => i),
      'bert.posIds',
    ); // [T] u32
    this.buffers.push(posIds);
    const a = buf(maxTokens * D, 'bert.a'); // [T, D] f32: block input / attention residual
    const b = buf(maxTokens * D, 'bert.b'); // [T, D] f32: block middle / FFN residual
    const qkv = buf(maxTokens * 3 * D, 'bert.qkv'); // [T, 3D] f32: q | k | v
    const att = buf(maxTokens * D, 'bert.att'); // [T, D] f32: attention output, also the position rows
    const ff = buf(maxTokens * FF, 'bert.ff'); // [T, FF] f32
    this.out = buf(D, 'bert.out'); // [D] f32: the pooled, normalized embedding
    const s = this.step.buffer;
    const op = (k: { encode(pass: GPUComputePassEncoder, n: number): void }): void => void this.ops.push(k);
    // Embeddings: token row + (position row + token type 0), then LayerNorm.
    op(new GatherRows(ctx, w.tokEmbd, this.tokIds, b, s));
    op(new GatherRows(ctx, w.posType, posIds, att, s));
    op(new Add(ctx, b, att, s, D));
    op(new LayerNorm(ctx, b, w.embNormW, w.embNormB, a, s, D, cfg.eps));
    for (const l of w.layers) {
      for (const p of l.qkv) op(new Matmul(ctx, p.w, a, qkv, s, { bias: l.qkvBias, ...(l.qkv.length > 1 ? { yStride: 3 * D, yOffset: p.col } : {}) }));
      op(new EncoderAttention(ctx, qkv, att, s, { numHeads: cfg.numHeads, headDim: cfg.headDim, qkvStride: 3 * D, kOffset: D, vOffset: 2 * D }));
      // Post-norm blocks: a = LN(a + attn·Woᵀ + bo); then b = LN(b + gelu(b·Wupᵀ + bup)·Wdownᵀ + bdown).
      op(new Matmul(ctx, l.o, att, a, s, { bias: l.oBias, accumulate: true }));
      op(new LayerNorm(ctx, a, l.attnNormW, l.attnNormB, b, s, D, cfg.eps));
      op(new Matmul(ctx, l.up, b, ff, s, { bias: l.upBias }));
      op(new Gelu(ctx, ff, s, FF));
      op(new Matmul(ctx, l.down, ff, b, s, { bias: l.downBias, accumulate: true }));
      op(new LayerNorm(ctx, b, l.outNormW, l.outNormB, a, s, D, cfg.eps));
    }
    this.pool = new Pool(ctx, a, this.out, s, D, cfg.pooling);
  }

  encode(enc: GPUCommandEncoder, numTokens: number): void {
    const pass = enc.beginComputePass();
    for (const k of this.ops) k.encode(pass, numTokens);
    this.pool.encode(pass);
    pass.end();
  }
}

export interface EmbeddingModelOptions {
  /**
   * Longest input in tokens, [CLS] and [SEP] included (default and maximum: the model's context length, the
   * rows of its position table). Activation buffers are sized for it.
   */
  maxTokens?: number;
  /**
   * What to do with a text longer than maxTokens: true (default) keeps its first maxTokens - 1 tokens and
   * closes with [SEP], as sentence-transformers truncates, and counts it in `truncatedTexts`; false
   * refuses the whole call with EngineError BAD_REQUEST.
   */
  truncate?: boolean;
}

/** Texts per readback: each text is its own pass, but a batch of them shares one staging buffer and one map. */
const BATCH = 64;

/**
 * A BERT sentence-embedding model on hearth's WebGPU kernels. Embeddings are L2-normalized, so cosine
 * similarity is a dot product.
 *
 * @example
 * const model = await loadEmbeddingModel(ctx, await fileSource('all-MiniLM-L6-v2.Q8_0.gguf'));
 * const [a, b] = await model.embed(['How do I reset my password?', 'password reset help']);
 * model.destroy();
 */
export interface EmbeddingModel extends Embedder {
  /** `model:<general.name>#<hash of the file's header and tensor table>`: differs between quantizations of one model. */
  readonly id: string;
  readonly dim: number;
  readonly config: BertConfig;
  readonly tokenizer: Tokenizer;
  readonly maxTokens: number;
  /** Texts cut to maxTokens so far (only with truncate: true). */
  readonly truncatedTexts: number;
  /** One L2-normalized vector per text, in order. */
  embed(texts: readonly string[]): Promise<Float32Array[]>;
  /** The token ids embed() feeds for a text: [CLS] text [SEP], truncated as embed() does. */
  tokenize(text: string): number[];
  destroy(): void;
}

function fileHash(file: GGUFFile): string {
  // FNV-1a over the metadata and tensor table: cheap, and it changes with any weight type or shape.
  let h = 0x811c9dc5;
  const mix = (s: string): void => {
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  };
  for (const [k, v] of file.metadata) {
    if (k === 'tokenizer.ggml.tokens' && Array.isArray(v)) mix(`${k}=${v.length}:${v.slice(0, 200).join('\u0000')}`);
    else mix(`${k}=${ArrayBuffer.isView(v) ? Array.from(v as ArrayLike<number>).join(',') : String(v)}`);
  }
  for (const t of file.tensors) mix(`${t.name}:${t.type}:${t.dims.join('x')}:${t.fileOffset}`);
  mix(String(file.fileSize));
  return h.toString(16).padStart(8, '0');
}

/**
 * Load a BERT GGUF (llama.cpp's `bert` architecture) for sentence embeddings. Bad or unsupported files fail with
 * EngineError (BAD_MODEL_FILE, UNSUPPORTED_ARCHITECTURE, UNSUPPORTED_TENSOR_TYPE) before anything is allocated.
 */
export async function loadEmbeddingModel(ctx: GpuContext, src: ByteSource, opts: EmbeddingModelOptions = {}): Promise<EmbeddingModel> {
  const file = await parseGGUF(src);
  const cfg = bertConfig(file);
  const tokenizer = Tokenizer.fromGGUF(new GGUFMeta(file.metadata));
  if (tokenizer.model !== 'bert' || tokenizer.bosId === null || tokenizer.sepId === null)
    throw new EngineError('BAD_MODEL_FILE', `A bert embedding model needs a WordPiece vocabulary with [CLS] and [SEP]; this one is '${tokenizer.model}'.`, {
      tokenizerModel: tokenizer.model,
    });
  const maxTokens = Math.min(opts.maxTokens ?? cfg.contextLength, cfg.contextLength);
  if (!(Number.isInteger(maxTokens) && maxTokens >= 2))
    throw new EngineError('BAD_REQUEST', `maxTokens must be an integer of at least 2 (for [CLS] and [SEP]); got ${opts.maxTokens}.`, {
      maxTokens: opts.maxTokens,
    });
  const truncate = opts.truncate ?? true;
  const weights = await loadBertWeights(ctx, file, src, cfg);
  let runner: BertRunner;
  try {
    runner = new BertRunner(ctx, cfg, weights, maxTokens);
  } catch (e) {
    for (const b of weights.buffers) b.destroy();
    throw e;
  }
  const D = cfg.dModel;
  const staging = ctx.device.createBuffer({ label: 'bert.staging', size: BATCH * D * 4, usage: MAP_READ | COPY_DST });
  const sepId = tokenizer.sepId;
  let truncatedTexts = 0;
  let destroyed = false;
  let queue: Promise<unknown> = Promise.resolve();

  const tokens = (text: string): { ids: number[]; cut: boolean } => {
    const ids = tokenizer.encode(text, { addBos: true, addSep: true, parseSpecial: false });
    if (ids.length <= maxTokens) return { ids, cut: false };
    const kept = ids.slice(0, maxTokens - 1);
    kept.push(sepId);
    return { ids: kept, cut: true };
  };

  const run = async (texts: readonly string[]): Promise<Float32Array[]> => {
    if (destroyed) throw new EngineError('NOT_LOADED', 'This embedding model was destroyed; load it again.', {});
    const all = texts.map(tokens);
    const over = all.findIndex((t) => t.cut);
    if (over >= 0 && !truncate) {
      const n = tokenizer.encode(texts[over]!, { addBos: true, addSep: true, parseSpecial: false }).length;
      throw new EngineError(
        'BAD_REQUEST',
        `Text ${over} is ${n} tokens with [CLS] and [SEP]; this embedding model takes at most ${maxTokens}. Shorten it, or load with truncate: true.`,
        { index: over, tokens: n, maxTokens },
      );
    }
    const out: Float32Array[] = [];
    for (let b0 = 0; b0 < all.length; b0 += BATCH) {
      const batch = all.slice(b0, b0 + BATCH);
      // Queue writes and submits run in order, so each pass sees its own token ids and count.
      batch.forEach(({ ids }, i) => {
        ctx.device.queue.writeBuffer(runner.tokIds, 0, Uint32Array.from(ids));
        runner.step.write(ids.length);
        const enc = ctx.device.createCommandEncoder();
        runner.encode(enc, ids.length);
        enc.copyBufferToBuffer(runner.out, 0, staging, i * D * 4, D * 4);
        ctx.device.queue.submit([enc.finish()]);
      });
      await mapRead(ctx, staging, 0, batch.length * D * 4);
      const data = new Float32Array(staging.getMappedRange(0, batch.length * D * 4));
      for (let i = 0; i < batch.length; i++) out.push(data.slice(i * D, (i + 1) * D));
      staging.unmap();
    }
    truncatedTexts += all.filter((t) => t.cut).length;
    assert(out.length === texts.length, 'one embedding per text');
    return out;
  };

  return {
    id: `model:${cfg.name || 'bert'}#${fileHash(file)}`,
    dim: D,
    config: cfg,
    tokenizer,
    maxTokens,
    get truncatedTexts() {
      return truncatedTexts;
    },
    tokenize: (text) => tokens(text).ids,
    embed(texts) {
      // One call at a time: the passes share the activation buffers and the staging buffer.
      const p = queue.then(() => run(texts));
      queue = p.catch(() => undefined);
      return p;
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      for (const b of [...runner.buffers, ...weights.buffers, staging]) b.destroy();
    },
  };
}
