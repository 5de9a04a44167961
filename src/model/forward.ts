// The forward pass: kernels in model order for one step of the serving loop, a batch of token
// ranges from several sequences (decode tokens and prefill chunks mixed), over a paged KV cache;
// then sampling of every sequence that asked for its next token, on the GPU, and one small
// readback. Bind groups and buffers are made once here; a step writes the token ids, their
// (position, sequence) pairs, the sequences' block tables and the sampling rows, records one
// command encoder and submits it. The block bookkeeping is src/kv/block-pool.ts (runner.pool).

import { EngineError } from '../api/errors.js';
import { checkDevice, type GpuContext } from '../gpu/device.js';
import { COPY_DST, MAP_READ, StepUniform, storageBuffer } from '../gpu/buffers.js';
import { Attention, type KvPaging } from '../kernels/attention.js';
import { SwiGluSplit } from '../kernels/elementwise.js';
import { GatherRows, Matmul } from '../kernels/matmul.js';
import { RmsNorm } from '../kernels/rms-norm.js';
import { RopeQkv, ropeTableBuffer } from '../kernels/rope.js';
import { SAMPLE_OUT_WORDS, Sampler, type SampleRow, type SamplingParams } from '../kernels/sample.js';
import { Profiler } from '../gpu/timing.js';
import { BlockPool } from '../kv/block-pool.js';
import type { ModelConfig } from './config.js';
import type { MatmulPart, ModelWeights } from './weights.js';

export interface RunnerOptions {
  /** Longest sequence in tokens (positions 0 .. maxContext - 1; the RoPE table's length). */
  maxContext: number;
  /** Most tokens per forward pass (the step's token budget; longer prefills are chunked). */
  maxBatch: number;
  /** Most sequences in one step (rows of the block-table buffer). */
  maxSeqs: number;
  /** Most sampled positions in one step (rows of the logits and sampling buffers): maxSeqs plus room for drafted tokens to verify. */
  maxOutputs: number;
  /** Tokens per KV block, a power of two. */
  blockSize: number;
  /** KV blocks in the pool (per layer: numBlocks * blockSize rows of K and of V). */
  numBlocks: number;
}

export interface StepResult {
  token: number;
  logprob: number;
  topLogprobs: { token: number; logprob: number }[];
  /**
   * With StepSeq.verify = k: the samples after each of the last k + 1 tokens fed, in order (the
   * last equals this result). Speculative decoding compares them with the drafted tokens.
   */
  chain?: StepResult[];
}

/** One sequence's part of a step: `tokens` fed at positions startPos, startPos + 1, ... */
export interface StepSeq {
  /** The sequence's block table: block i holds positions i * blockSize .. (i + 1) * blockSize - 1. */
  blocks: readonly number[];
  tokens: ArrayLike<number>;
  startPos: number;
  /** Sample the token after the last one fed; absent for a prefill chunk that is not the last. */
  sample?: SampleRow;
  /**
   * Also sample after each of the `verify` tokens before the last (drafted tokens to verify), with
   * the same settings and counters sample.counter, +1, ...; the results come back in `chain`.
   */
  verify?: number;
}

interface Layer {
  attnNorm: RmsNorm;
  /** One matmul when q|k|v share a type, else three writing their columns of the qkv row. */
  qkv: Matmul[];
  ropeQkv: RopeQkv;
  attn: Attention;
  o: Matmul;
  ffnNorm: RmsNorm;
  gateUp: Matmul[];
  swiglu: SwiGluSplit;
  down: Matmul;
}

export class ModelRunner {
  readonly step: StepUniform;
  /** Which KV blocks are free, used or cached; the scheduler and SoloSequence allocate from it. */
  readonly pool: BlockPool;
  readonly blocksPerSeq: number;
  private readonly tokenIds: GPUBuffer;
  private readonly tokMeta: GPUBuffer;
  private readonly tables: GPUBuffer;
  private readonly outRows: GPUBuffer;
  private readonly logits: GPUBuffer;
  private readonly sampleOut: GPUBuffer;
  private readonly staging: GPUBuffer;
  private readonly embed: GatherRows;
  private readonly layers: Layer[];
  private readonly finalNorm: RmsNorm;
  private readonly lmHead: Matmul;
  private readonly sampler: Sampler;
  private readonly buffers: GPUBuffer[] = [];
  /** Bytes of GPU memory for activations and the KV cache. */
  readonly runtimeBytes: number;
  // Host-side copies of the per-step inputs, reused so a step allocates nothing.
  private readonly idsScratch: Uint32Array<ArrayBuffer>;
  private readonly metaScratch: Uint32Array<ArrayBuffer>;
  private readonly tableScratch: Uint32Array<ArrayBuffer>;
  private readonly outScratch: Uint32Array<ArrayBuffer>;

  constructor(
    private readonly ctx: GpuContext,
    readonly cfg: ModelConfig,
    private readonly w: ModelWeights,
    readonly opts: RunnerOptions,
  ) {
    const dev = ctx.device;
    const { dModel: D, ffDim: FF, numHeads: H, numKvHeads: KVH, headDim: HD, vocabSize: V } = cfg;
    const { maxBatch: B, maxSeqs: S, maxOutputs: O, blockSize: BS, numBlocks: NB } = opts;
    this.pool = new BlockPool(NB, BS);
    this.blocksPerSeq = Math.ceil(opts.maxContext / BS);
    const buf = (elems: number, label: string): GPUBuffer => {
      const b = storageBuffer(dev, elems * 4, label);
      this.buffers.push(b);
      return b;
    };
    this.step = new StepUniform(dev);
    this.tokenIds = buf(B, 'tokenIds'); // [B] u32
    this.tokMeta = buf(2 * B, 'tokMeta'); // [B] (position, sequence row) u32
    this.tables = buf(S * this.blocksPerSeq, 'blockTables'); // [S, blocksPerSeq] u32
    this.outRows = buf(O, 'outRows'); // [O] u32: token row whose logits each output row takes
    this.idsScratch = new Uint32Array(B);
    this.metaScratch = new Uint32Array(2 * B);
    this.tableScratch = new Uint32Array(S * this.blocksPerSeq);
    this.outScratch = new Uint32Array(O);
    const x = buf(B * D, 'x'); // [B, D] f32 residual stream
    const xn = buf(B * D, 'xn'); // [B, D] f32 normed
    const qkvWidth = (H + 2 * KVH) * HD;
    const qkv = buf(B * qkvWidth, 'qkv'); // [B, (H + 2 KVH) * HD] f32: q heads | k heads | v heads
    const attnOut = buf(B * H * HD, 'attnOut'); // [B, H, HD] f32
    const gu = buf(B * 2 * FF, 'gateUp'); // [B, 2 FF] f32: gate | up
    const act = buf(B * FF, 'act'); // [B, FF] f32
    this.logits = buf(O * V, 'logits'); // [O, V] f32
    this.sampleOut = buf(O * SAMPLE_OUT_WORDS, 'sampleOut'); // [O, 2 + 2 * 32] u32
    this.staging = dev.createBuffer({ label: 'staging', size: O * SAMPLE_OUT_WORDS * 4, usage: MAP_READ | COPY_DST });
    const rope = ropeTableBuffer(
      ctx,
      { ropeDim: cfg.ropeDim, base: cfg.ropeBase, freqScale: cfg.ropeFreqScale, neox: cfg.neox, ...(w.ropeFreqs ? { freqFactors: w.ropeFreqs } : {}) },
      opts.maxContext,
    );
    this.buffers.push(rope);
    const ropeCfg = { ropeDim: cfg.ropeDim, base: cfg.ropeBase, freqScale: cfg.ropeFreqScale, neox: cfg.neox };
    const paging: KvPaging = { tokMeta: this.tokMeta, tables: this.tables, blockSize: BS, blocksPerSeq: this.blocksPerSeq };
    const s = this.step.buffer;
    this.embed = new GatherRows(ctx, w.tokEmbd, this.tokenIds, x, s);
    this.layers = w.layers.map((lw, i) => {
      const kCache = buf(NB * BS * KVH * HD, `kCache.${i}`); // [numBlocks * blockSize, KVH, HD] f32
      const vCache = buf(NB * BS * KVH * HD, `vCache.${i}`); // [numBlocks * blockSize, KVH, HD] f32
      const into = (out: GPUBuffer, width: number) => (part: MatmulPart) =>
        new Matmul(ctx, part.w, xn, out, s, { yStride: width, yOffset: part.col, ...(part.bias ? { bias: part.bias } : {}) });
      return {
        attnNorm: new RmsNorm(ctx, x, lw.attnNorm, xn, s, D, cfg.rmsEps),
        qkv: lw.qkv.map(into(qkv, qkvWidth)),
        ropeQkv: new RopeQkv(ctx, qkv, rope, s, kCache, vCache, H, KVH, HD, ropeCfg, paging),
        attn: new Attention(ctx, qkv, kCache, vCache, attnOut, s, H, KVH, HD, paging, qkvWidth),
        o: new Matmul(ctx, lw.o, attnOut, x, s, { accumulate: true }),
        ffnNorm: new RmsNorm(ctx, x, lw.ffnNorm, xn, s, D, cfg.rmsEps),
        gateUp: lw.gateUp.map(into(gu, 2 * FF)),
        swiglu: new SwiGluSplit(ctx, gu, act, s, FF),
        down: new Matmul(ctx, lw.down, act, x, s, { accumulate: true }),
      };
    });
    this.finalNorm = new RmsNorm(ctx, x, w.outputNorm, xn, s, D, cfg.rmsEps, this.outRows);
    this.lmHead = new Matmul(ctx, w.output, xn, this.logits, s, { rowsFromOut: true });
    this.sampler = new Sampler(ctx, this.logits, this.sampleOut, O, V);
    this.runtimeBytes = this.buffers.reduce((a, b) => a + b.size, 0);
  }

  /** GPU bytes of the KV pool: K and V of every layer. */
  static kvBytes(cfg: ModelConfig, numBlocks: number, blockSize: number): number {
    return 4 * 2 * cfg.numLayers * numBlocks * blockSize * cfg.numKvHeads * cfg.headDim;
  }

  /** GPU bytes a runner with these options allocates (KV pool, activations, tables), before it does. */
  static estimateBytes(cfg: ModelConfig, opts: RunnerOptions): number {
    const { dModel: D, ffDim: FF, numHeads: H, numKvHeads: KVH, headDim: HD, vocabSize: V } = cfg;
    const { maxBatch: B, maxSeqs: S, maxOutputs: O } = opts;
    const perTokenActs = 2 * D + (H + 2 * KVH) * HD + H * HD + 3 * FF + 3;
    const rope = opts.maxContext * cfg.ropeDim;
    const perSeq = Math.ceil(opts.maxContext / opts.blockSize);
    const perOut = 1 + V + 2 * SAMPLE_OUT_WORDS + 8;
    return 4 * (B * perTokenActs + rope + S * perSeq + O * perOut) + ModelRunner.kvBytes(cfg, opts.numBlocks, opts.blockSize);
  }

  /**
   * Record the forward pass of `n` tokens into `enc`, ending with the logits of `outs` rows.
   * With a profiler, every dispatch gets its own timestamped pass, labelled by kernel class.
   */
  private encodeForward(enc: GPUCommandEncoder, n: number, outs: number, prof?: Profiler): void {
    const ops: [label: string, run: (pass: GPUComputePassEncoder) => void][] = [['embed', (p) => this.embed.encode(p, n)]];
    for (const L of this.layers) {
      ops.push(['rms_norm', (p) => L.attnNorm.encode(p, n)]);
      for (const m of L.qkv) ops.push(['matmul_qkv', (p) => m.encode(p, n)]);
      ops.push(
        ['rope_kv_store', (p) => L.ropeQkv.encode(p, n)],
        ['attention', (p) => L.attn.encode(p, n)],
        ['matmul_o', (p) => L.o.encode(p, n)],
        ['rms_norm', (p) => L.ffnNorm.encode(p, n)],
      );
      for (const m of L.gateUp) ops.push(['matmul_gate_up', (p) => m.encode(p, n)]);
      ops.push(['swiglu', (p) => L.swiglu.encode(p, n)], ['matmul_down', (p) => L.down.encode(p, n)]);
    }
    if (outs > 0) ops.push(['rms_norm', (p) => this.finalNorm.encode(p, outs)], ['lm_head', (p) => this.lmHead.encode(p, outs)]);
    if (prof) {
      for (const [label, run] of ops) {
        const tp = prof.pass(enc, label);
        run(tp);
        tp.end();
      }
      return;
    }
    const pass = enc.beginComputePass();
    for (const [, run] of ops) run(pass);
    pass.end();
  }

  /** Dispatches in one forward pass (for sizing a profiler). */
  get dispatchesPerForward(): number {
    return 3 + this.layers.reduce((a, L) => a + 7 + L.qkv.length + L.gateUp.length, 0);
  }

  /**
   * Check a step and write its inputs: token ids, (position, sequence row) per token, block
   * tables, the output rows and their sampling settings. Returns (tokens, output rows).
   */
  private writeStep(seqs: readonly StepSeq[]): { n: number; outs: number; logprobs: boolean } {
    const { maxBatch, maxSeqs, maxContext, blockSize } = this.opts;
    if (seqs.length === 0) throw new EngineError('BAD_REQUEST', 'A step needs at least one sequence.');
    if (seqs.length > maxSeqs)
      throw new EngineError('BAD_REQUEST', `A step takes at most ${maxSeqs} sequences (got ${seqs.length}).`, { seqs: seqs.length, maxSeqs });
    const ids = this.idsScratch;
    const meta = this.metaScratch;
    const tables = this.tableScratch;
    const rows: SampleRow[] = [];
    let n = 0;
    let logprobs = false;
    seqs.forEach((q, r) => {
      const len = q.tokens.length;
      const end = q.startPos + len;
      if (len === 0) throw new EngineError('BAD_REQUEST', 'A sequence in a step needs at least one token.');
      if (n + len > maxBatch) throw new EngineError('BAD_REQUEST', `A step takes at most ${maxBatch} tokens.`, { tokens: n + len, maxBatch });
      if (!(q.startPos >= 0) || end > maxContext)
        throw new EngineError('CONTEXT_OVERFLOW', `The sequence would reach ${end} tokens but a sequence holds at most ${maxContext}.`, {
          tokens: end,
          maxContext,
        });
      if (q.blocks.length * blockSize < end || q.blocks.length > this.blocksPerSeq)
        throw new Error(`hearth internal error: ${q.blocks.length} blocks of ${blockSize} cannot hold positions up to ${end}`);
      for (let i = 0; i < len; i++) {
        const t = q.tokens[i]!;
        if (!Number.isInteger(t) || t < 0 || t >= this.cfg.vocabSize)
          throw new EngineError('BAD_REQUEST', `Token id ${t} is outside the vocabulary (0..${this.cfg.vocabSize - 1}).`, { token: t });
        ids[n + i] = t;
        meta[2 * (n + i)] = q.startPos + i;
        meta[2 * (n + i) + 1] = r;
      }
      const used = Math.ceil(end / blockSize);
      for (let b = 0; b < used; b++) {
        const id = q.blocks[b]!;
        if (!(Number.isInteger(id) && id >= 0 && id < this.opts.numBlocks)) throw new Error(`hearth internal error: block id ${id}`);
        tables[r * this.blocksPerSeq + b] = id;
      }
      n += len;
      if (q.sample && rows.length + Math.min(q.verify ?? 0, len - 1) + 1 > this.opts.maxOutputs)
        throw new EngineError('BAD_REQUEST', `A step samples at most ${this.opts.maxOutputs} positions.`, { maxOutputs: this.opts.maxOutputs });
      if (q.sample) {
        const k = Math.min(q.verify ?? 0, len - 1);
        for (let i = k; i >= 0; i--) {
          this.outScratch[rows.length] = n - 1 - i;
          rows.push({ sampling: q.sample.sampling, counter: q.sample.counter + k - i });
        }
        if (q.sample.sampling.logprobs > 0) logprobs = true;
      }
    });
    const q = this.ctx.device.queue;
    q.writeBuffer(this.tokenIds, 0, ids, 0, n);
    q.writeBuffer(this.tokMeta, 0, meta, 0, 2 * n);
    q.writeBuffer(this.tables, 0, tables, 0, seqs.length * this.blocksPerSeq);
    if (rows.length > 0) {
      q.writeBuffer(this.outRows, 0, this.outScratch, 0, rows.length);
      this.sampler.setRows(rows);
    }
    this.step.write(n, rows.length);
    return { n, outs: rows.length, logprobs };
  }

  /**
   * One forward pass over the sequences' token ranges (their KV is written to the cache), then
   * sampling for each that asked. Returns, per sequence in order, its sampled token or null.
   */
  async run(seqs: readonly StepSeq[]): Promise<(StepResult | null)[]> {
    checkDevice(this.ctx);
    const { n, outs, logprobs } = this.writeStep(seqs);
    const enc = this.ctx.device.createCommandEncoder();
    this.encodeForward(enc, n, outs);
    if (outs === 0) {
      this.ctx.device.queue.submit([enc.finish()]);
      return seqs.map(() => null);
    }
    const pass = enc.beginComputePass();
    this.sampler.encode(pass, outs, logprobs);
    pass.end();
    const words = outs * SAMPLE_OUT_WORDS;
    enc.copyBufferToBuffer(this.sampleOut, 0, this.staging, 0, words * 4);
    this.ctx.device.queue.submit([enc.finish()]);
    await this.staging.mapAsync(1, 0, words * 4);
    const out = new Uint32Array(this.staging.getMappedRange(0, words * 4).slice(0));
    this.staging.unmap();
    checkDevice(this.ctx);
    const f = new Float32Array(out.buffer);
    let row = 0;
    const result = (q: StepSeq): StepResult => {
      const o = row++ * SAMPLE_OUT_WORDS;
      const top: { token: number; logprob: number }[] = [];
      for (let i = 0; i < Math.min(q.sample!.sampling.logprobs, 32); i++) top.push({ token: out[o + 2 + 2 * i]!, logprob: f[o + 3 + 2 * i]! });
      return { token: out[o]!, logprob: f[o + 1]!, topLogprobs: top };
    };
    return seqs.map((q) => {
      if (!q.sample) return null;
      const k = Math.min(q.verify ?? 0, q.tokens.length - 1);
      if (k === 0) return result(q);
      const chain = Array.from({ length: k + 1 }, () => result(q));
      return { ...chain[k]!, chain };
    });
  }

  /** Like run() but reads back the full logits of every sequence that has `sample` set (tests and evaluation). */
  async runLogits(seqs: readonly StepSeq[]): Promise<Float32Array[]> {
    checkDevice(this.ctx);
    const { n, outs } = this.writeStep(seqs);
    const V = this.cfg.vocabSize;
    const enc = this.ctx.device.createCommandEncoder();
    this.encodeForward(enc, n, outs);
    if (outs === 0) {
      this.ctx.device.queue.submit([enc.finish()]);
      return [];
    }
    const staging = this.ctx.device.createBuffer({ size: outs * V * 4, usage: MAP_READ | COPY_DST });
    enc.copyBufferToBuffer(this.logits, 0, staging, 0, outs * V * 4);
    this.ctx.device.queue.submit([enc.finish()]);
    await staging.mapAsync(1);
    const all = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return Array.from({ length: outs }, (_, r) => all.subarray(r * V, (r + 1) * V));
  }

  /**
   * GPU time per kernel class for one step, plus sampling, from timestamp queries (null when the
   * adapter has none). Writes the KV cache like a real step.
   */
  async profileStep(seqs: readonly StepSeq[]): Promise<{ kernel: string; ms: number }[] | null> {
    if (!Profiler.available(this.ctx)) return null;
    const { n, outs, logprobs } = this.writeStep(seqs);
    const prof = new Profiler(this.ctx, this.dispatchesPerForward + 1);
    const enc = this.ctx.device.createCommandEncoder();
    this.encodeForward(enc, n, outs, prof);
    if (outs > 0) {
      const sp = prof.pass(enc, 'sample');
      this.sampler.encode(sp, outs, logprobs);
      sp.end();
    }
    prof.finish(enc);
    this.ctx.device.queue.submit([enc.finish()]);
    return prof.results();
  }

  /** A sequence driven by hand (tests, benchmarks, the CLI's bench): blocks from the pool until release(). */
  solo(): SoloSequence {
    return new SoloSequence(this);
  }

  destroy(): void {
    for (const b of this.buffers) b.destroy();
    this.staging.destroy();
  }
}

/**
 * One sequence fed by hand, outside the scheduler: it takes blocks from the runner's pool as its
 * positions grow and prefills in chunks of maxBatch. release() returns the blocks.
 */
export class SoloSequence {
  readonly blocks: number[] = [];
  constructor(private readonly runner: ModelRunner) {}

  /** Make the block table cover positions 0 .. end - 1 (OUT_OF_KV_BLOCKS when the pool is used up). */
  reserve(end: number): void {
    const { blockSize, maxContext } = this.runner.opts;
    if (end > maxContext)
      throw new EngineError('CONTEXT_OVERFLOW', `The sequence would reach ${end} tokens but a sequence holds at most ${maxContext}.`, {
        tokens: end,
        maxContext,
      });
    while (this.blocks.length * blockSize < end) {
      const b = this.runner.pool.allocate();
      if (b === null)
        throw new EngineError('OUT_OF_KV_BLOCKS', `The KV pool has no free block for position ${this.blocks.length * blockSize}.`, {
          numBlocks: this.runner.opts.numBlocks,
          blockSize,
        });
      this.blocks.push(b);
    }
  }

  /** Feed all but the last maxBatch-sized chunk; returns where the last chunk starts. */
  private async prefix(tokens: ArrayLike<number>, startPos: number): Promise<number> {
    if (tokens.length === 0) throw new EngineError('BAD_REQUEST', 'A forward pass needs at least one token.');
    this.reserve(startPos + tokens.length);
    const B = this.runner.opts.maxBatch;
    let done = 0;
    while (tokens.length - done > B) {
      await this.runner.run([{ blocks: this.blocks, tokens: Array.prototype.slice.call(tokens, done, done + B) as number[], startPos: startPos + done }]);
      done += B;
    }
    return done;
  }

  /** Feed `tokens` at `startPos` and sample the next token; `counter` picks the position in the seeded random stream. */
  async forwardSample(tokens: ArrayLike<number>, startPos: number, sampling: SamplingParams, counter: number): Promise<StepResult> {
    const done = await this.prefix(tokens, startPos);
    const rest = Array.prototype.slice.call(tokens, done) as number[];
    const [r] = await this.runner.run([{ blocks: this.blocks, tokens: rest, startPos: startPos + done, sample: { sampling, counter } }]);
    return r!;
  }

  /** Feed tokens and read back the full logits of the last one. */
  async forwardLogits(tokens: ArrayLike<number>, startPos: number): Promise<Float32Array> {
    const done = await this.prefix(tokens, startPos);
    const rest = Array.prototype.slice.call(tokens, done) as number[];
    const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0, logprobs: 0 };
    const [l] = await this.runner.runLogits([{ blocks: this.blocks, tokens: rest, startPos: startPos + done, sample: { sampling: greedy, counter: 0 } }]);
    return l!;
  }

  release(): void {
    for (const b of this.blocks.splice(0).reverse()) this.runner.pool.release(b);
  }
}
