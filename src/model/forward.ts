// The forward pass: kernels in model order for a step of numTokens tokens at startPos, then
// sampling on the GPU and one small readback. Bind groups and buffers are made once here; a step
// only writes the step uniform and token ids, records one command encoder and submits it.

import { EngineError } from '../api/errors.js';
import { checkDevice, type GpuContext } from '../gpu/device.js';
import { COPY_DST, MAP_READ, StepUniform, storageBuffer } from '../gpu/buffers.js';
import { Attention } from '../kernels/attention.js';
import { SwiGluSplit } from '../kernels/elementwise.js';
import { GatherRows, Matmul } from '../kernels/matmul.js';
import { RmsNorm } from '../kernels/rms-norm.js';
import { RopeQkv, ropeTableBuffer } from '../kernels/rope.js';
import { SAMPLE_OUT_WORDS, Sampler, type SamplingParams } from '../kernels/sample.js';
import { Profiler } from '../gpu/timing.js';
import type { ModelConfig } from './config.js';
import type { MatmulPart, ModelWeights } from './weights.js';

export interface RunnerOptions {
  /** KV cache length in tokens. */
  maxContext: number;
  /** Most tokens per forward pass (prefill is chunked to this). */
  maxBatch: number;
}

export interface StepResult {
  token: number;
  logprob: number;
  topLogprobs: { token: number; logprob: number }[];
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
  private readonly tokenIds: GPUBuffer;
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
  /** Bumped by every forward pass: a caller that remembers what its KV rows hold can tell whether anyone else wrote since. */
  kvVersion = 0;
  /** Host-side token ids of a step, reused so a decode step allocates nothing. */
  private readonly idsScratch: Uint32Array<ArrayBuffer>;

  constructor(
    private readonly ctx: GpuContext,
    readonly cfg: ModelConfig,
    private readonly w: ModelWeights,
    readonly opts: RunnerOptions,
  ) {
    const dev = ctx.device;
    const { dModel: D, ffDim: FF, numHeads: H, numKvHeads: KVH, headDim: HD, vocabSize: V } = cfg;
    const B = opts.maxBatch;
    const buf = (elems: number, label: string): GPUBuffer => {
      const b = storageBuffer(dev, elems * 4, label);
      this.buffers.push(b);
      return b;
    };
    this.step = new StepUniform(dev);
    this.tokenIds = buf(B, 'tokenIds'); // [B] u32
    this.idsScratch = new Uint32Array(B);
    const x = buf(B * D, 'x'); // [B, D] f32 residual stream
    const xn = buf(B * D, 'xn'); // [B, D] f32 normed
    const qkvWidth = (H + 2 * KVH) * HD;
    const qkv = buf(B * qkvWidth, 'qkv'); // [B, (H + 2 KVH) * HD] f32: q heads | k heads | v heads
    const attnOut = buf(B * H * HD, 'attnOut'); // [B, H, HD] f32
    const gu = buf(B * 2 * FF, 'gateUp'); // [B, 2 FF] f32: gate | up
    const act = buf(B * FF, 'act'); // [B, FF] f32
    this.logits = buf(V, 'logits'); // [V] f32
    this.sampleOut = buf(SAMPLE_OUT_WORDS, 'sampleOut'); // [2 + 2 * 32] u32
    this.staging = dev.createBuffer({ label: 'staging', size: SAMPLE_OUT_WORDS * 4, usage: MAP_READ | COPY_DST });
    const rope = ropeTableBuffer(
      ctx,
      { ropeDim: cfg.ropeDim, base: cfg.ropeBase, freqScale: cfg.ropeFreqScale, neox: cfg.neox, ...(w.ropeFreqs ? { freqFactors: w.ropeFreqs } : {}) },
      opts.maxContext,
    );
    this.buffers.push(rope);
    const ropeCfg = { ropeDim: cfg.ropeDim, base: cfg.ropeBase, freqScale: cfg.ropeFreqScale, neox: cfg.neox };
    const s = this.step.buffer;
    this.embed = new GatherRows(ctx, w.tokEmbd, this.tokenIds, x, s);
    this.layers = w.layers.map((lw, i) => {
      const kCache = buf(opts.maxContext * KVH * HD, `kCache.${i}`); // [maxContext, KVH, HD] f32
      const vCache = buf(opts.maxContext * KVH * HD, `vCache.${i}`); // [maxContext, KVH, HD] f32
      const into = (out: GPUBuffer, width: number) => (part: MatmulPart) =>
        new Matmul(ctx, part.w, xn, out, s, { yStride: width, yOffset: part.col, ...(part.bias ? { bias: part.bias } : {}) });
      return {
        attnNorm: new RmsNorm(ctx, x, lw.attnNorm, xn, s, D, cfg.rmsEps),
        qkv: lw.qkv.map(into(qkv, qkvWidth)),
        ropeQkv: new RopeQkv(ctx, qkv, rope, s, kCache, vCache, H, KVH, HD, ropeCfg),
        attn: new Attention(ctx, qkv, kCache, vCache, attnOut, s, H, KVH, HD, qkvWidth),
        o: new Matmul(ctx, lw.o, attnOut, x, s, { accumulate: true }),
        ffnNorm: new RmsNorm(ctx, x, lw.ffnNorm, xn, s, D, cfg.rmsEps),
        gateUp: lw.gateUp.map(into(gu, 2 * FF)),
        swiglu: new SwiGluSplit(ctx, gu, act, s, FF),
        down: new Matmul(ctx, lw.down, act, x, s, { accumulate: true }),
      };
    });
    this.finalNorm = new RmsNorm(ctx, x, w.outputNorm, xn, s, D, cfg.rmsEps, true);
    this.lmHead = new Matmul(ctx, w.output, xn, this.logits, s, { mFixed: 1 });
    this.sampler = new Sampler(ctx, this.logits, this.sampleOut, s, V);
    this.runtimeBytes = this.buffers.reduce((a, b) => a + b.size, 0);
  }

  /** GPU bytes a runner with these options allocates (KV cache, activations, tables), before it does. */
  static estimateBytes(cfg: ModelConfig, opts: RunnerOptions): number {
    const { dModel: D, ffDim: FF, numHeads: H, numKvHeads: KVH, headDim: HD, vocabSize: V } = cfg;
    const B = opts.maxBatch;
    const perTokenActs = 2 * D + (H + 2 * KVH) * HD + H * HD + 3 * FF;
    const kv = 2 * cfg.numLayers * opts.maxContext * KVH * HD;
    const rope = opts.maxContext * cfg.ropeDim;
    return 4 * (B * perTokenActs + B + kv + rope + V + 2 * SAMPLE_OUT_WORDS);
  }

  /**
   * Record the forward pass of `n` tokens at `startPos` into `enc` (logits of the last token).
   * With a profiler, every dispatch gets its own timestamped pass, labelled by kernel class.
   */
  private encodeForward(enc: GPUCommandEncoder, n: number, startPos: number, prof?: Profiler): void {
    void startPos; // every kernel reads the position from the step uniform
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
    ops.push(['rms_norm', (p) => this.finalNorm.encode(p, n)], ['lm_head', (p) => this.lmHead.encode(p, 1)]);
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
   * GPU time per kernel class for one forward pass of `tokens` at `startPos`, plus sampling,
   * from timestamp queries (null when the adapter has none). Writes the KV cache like a real step.
   */
  async profileStep(tokens: ArrayLike<number>, startPos: number, sampling: SamplingParams): Promise<{ kernel: string; ms: number }[] | null> {
    if (!Profiler.available(this.ctx)) return null;
    this.checkRange(tokens, startPos);
    if (tokens.length > this.opts.maxBatch) throw new EngineError('BAD_REQUEST', `profileStep takes at most maxBatch (${this.opts.maxBatch}) tokens.`);
    this.writeTokens(tokens, 0, tokens.length, startPos, 0);
    this.sampler.setParams(sampling);
    const prof = new Profiler(this.ctx, this.dispatchesPerForward + 1);
    const enc = this.ctx.device.createCommandEncoder();
    this.encodeForward(enc, tokens.length, startPos, prof);
    const sp = prof.pass(enc, 'sample');
    this.sampler.encode(sp, sampling.logprobs > 0);
    sp.end();
    prof.finish(enc);
    this.ctx.device.queue.submit([enc.finish()]);
    return prof.results();
  }

  private checkRange(tokens: ArrayLike<number>, startPos: number): void {
    if (tokens.length === 0) throw new EngineError('BAD_REQUEST', 'A forward pass needs at least one token.');
    if (startPos + tokens.length > this.opts.maxContext)
      throw new EngineError('CONTEXT_OVERFLOW', `The sequence would reach ${startPos + tokens.length} tokens but the KV cache holds ${this.opts.maxContext}.`, {
        tokens: startPos + tokens.length,
        maxContext: this.opts.maxContext,
      });
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= this.cfg.vocabSize)
        throw new EngineError('BAD_REQUEST', `Token id ${t} is outside the vocabulary (0..${this.cfg.vocabSize - 1}).`, { token: t });
    }
  }

  /** Run all but the last chunk of a long input; returns the start of the last chunk. */
  private prefillChunks(tokens: ArrayLike<number>, startPos: number): number {
    const B = this.opts.maxBatch;
    let done = 0;
    while (tokens.length - done > B) {
      this.writeTokens(tokens, done, B, startPos + done, 0);
      const enc = this.ctx.device.createCommandEncoder();
      this.encodeForward(enc, B, startPos + done);
      this.ctx.device.queue.submit([enc.finish()]);
      done += B;
    }
    return done;
  }

  private writeTokens(tokens: ArrayLike<number>, from: number, n: number, startPos: number, counter: number): void {
    this.kvVersion++;
    const ids = this.idsScratch;
    for (let i = 0; i < n; i++) ids[i] = tokens[from + i]!;
    this.ctx.device.queue.writeBuffer(this.tokenIds, 0, ids, 0, n);
    this.step.write(n, startPos, counter);
  }

  /**
   * Feed `tokens` at `startPos` (their KV is written to the cache) and sample the next token on
   * the GPU. `counter` picks the position in the seeded random stream.
   */
  async forwardSample(tokens: ArrayLike<number>, startPos: number, sampling: SamplingParams, counter: number): Promise<StepResult> {
    checkDevice(this.ctx);
    this.checkRange(tokens, startPos);
    const done = this.prefillChunks(tokens, startPos);
    const n = tokens.length - done;
    this.writeTokens(tokens, done, n, startPos + done, counter);
    this.sampler.setParams(sampling);
    const enc = this.ctx.device.createCommandEncoder();
    this.encodeForward(enc, n, startPos + done);
    const pass = enc.beginComputePass();
    this.sampler.encode(pass, sampling.logprobs > 0);
    pass.end();
    enc.copyBufferToBuffer(this.sampleOut, 0, this.staging, 0, SAMPLE_OUT_WORDS * 4);
    this.ctx.device.queue.submit([enc.finish()]);
    await this.staging.mapAsync(1);
    const out = new Uint32Array(this.staging.getMappedRange().slice(0));
    this.staging.unmap();
    checkDevice(this.ctx);
    const f = new Float32Array(out.buffer);
    const top: { token: number; logprob: number }[] = [];
    for (let i = 0; i < Math.min(sampling.logprobs, 32); i++) top.push({ token: out[2 + 2 * i]!, logprob: f[3 + 2 * i]! });
    return { token: out[0]!, logprob: f[1]!, topLogprobs: top };
  }

  /** Feed tokens and read back the full logits of the last one (tests and evaluation). */
  async forwardLogits(tokens: ArrayLike<number>, startPos: number): Promise<Float32Array> {
    checkDevice(this.ctx);
    this.checkRange(tokens, startPos);
    const done = this.prefillChunks(tokens, startPos);
    const n = tokens.length - done;
    this.writeTokens(tokens, done, n, startPos + done, 0);
    const V = this.cfg.vocabSize;
    const staging = this.ctx.device.createBuffer({ size: V * 4, usage: MAP_READ | COPY_DST });
    const enc = this.ctx.device.createCommandEncoder();
    this.encodeForward(enc, n, startPos + done);
    enc.copyBufferToBuffer(this.logits, 0, staging, 0, V * 4);
    this.ctx.device.queue.submit([enc.finish()]);
    await staging.mapAsync(1);
    const out = new Float32Array(staging.getMappedRange().slice(0));
    staging.unmap();
    staging.destroy();
    return out;
  }

  destroy(): void {
    for (const b of this.buffers) b.destroy();
    this.staging.destroy();
  }
}
