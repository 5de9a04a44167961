// The forward pass: kernels in model order for one step of the serving loop, a batch of token
// ranges from several sequences (decode tokens and prefill chunks mixed), over a paged KV cache;
// then sampling of every sequence that asked for its next token, on the GPU, and one small
// readback. Bind groups and buffers are made once here; a step writes the token ids, their
// (position, sequence) pairs, the sequences' block tables and the sampling rows, records one
// command encoder and submits it. The block bookkeeping is src/kv/block-pool.ts (runner.pool).

import { EngineError } from '../api/errors.js';
import { checkDevice, mapRead, type GpuContext } from '../gpu/device.js';
import { ReadbackPacer } from '../gpu/pacing.js';
import { COPY_DST, MAP_READ, StepUniform, storageBuffer } from '../gpu/buffers.js';
import { Attention, attentionPartials, type KvPaging } from '../kernels/attention.js';
import { SwiGluSplit } from '../kernels/elementwise.js';
import { GatherRows, Matmul } from '../kernels/matmul.js';
import { RmsNorm } from '../kernels/rms-norm.js';
import { RopeQkv, ropeTableBuffer } from '../kernels/rope.js';
import { SAMPLE_OUT_WORDS, Sampler, type SampleRow, type SamplingParams } from '../kernels/sample.js';
import { Profiler } from '../gpu/timing.js';
import { BlockPool } from '../kv/block-pool.js';
import { KvMove } from '../kernels/kv-move.js';
import { depths, levels, nodeMeta, type TreeShape } from '../spec/tree.js';
import { NODE_WORDS, NO_ROW, SpecKernels, VERIFY_OUT_WORDS, type TreeSeqSpec, type VerifyMethod } from '../spec/verify.js';
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
  /** With StepSeq.spec: the accepted drafted tokens, then the target's own next token (this result). */
  chain?: StepResult[];
  /** With StepSeq.spec: how many drafted tokens were accepted (chain holds them, then the target's own token). */
  accepted?: number;
}

/** A token tree fed in one pass (speculative decoding): tokens are nodes first, first + 1, ... of `shape`, the root at slot startPos. */
export interface StepTree {
  shape: TreeShape;
  first: number;
}

/** Verify a fed tree on the GPU (StepSeq.tree with first 0 and sample set). */
export interface StepSpec {
  method: VerifyMethod;
  /** Per node: its row of the runner's draft logits (from draftTrees), or NO_ROW when its children are deterministic drafts. */
  qRows: readonly number[];
  draftTemperature: number;
}

/** A sequence to draft a tree for (draftTrees): the tree's shape under `root` fed at slot startPos. */
export interface DraftJob {
  blocks: readonly number[];
  /** A draft model's missing KV: tokens at positions from .. startPos - 1 it has not computed yet, fed before the tree. */
  catchUp?: { from: number; tokens: readonly number[] };
  /** The target's sampling temperature (<= 0: greedy drafts, the top tokens). */
  temperature: number;
  startPos: number;
  root: number;
  shape: TreeShape;
  method: VerifyMethod;
  /** Temperature of the draft's distribution (<= 0: the top tokens). */
  draftTemperature: number;
  seed: number;
  counter: number;
}

/** A drafted tree: every node's token (root first) and its row of the draft logits. */
export interface DraftedTree {
  tokens: number[];
  qRows: number[];
}

/** One sequence's part of a step: `tokens` fed at positions startPos, startPos + 1, ... */
export interface StepSeq {
  /** The sequence's block table: block i holds positions i * blockSize .. (i + 1) * blockSize - 1. */
  blocks: readonly number[];
  tokens: ArrayLike<number>;
  startPos: number;
  /** Sample the token after the last one fed; absent for a prefill chunk that is not the last. */
  sample?: SampleRow;
  /** Feed tree nodes instead of a run of positions (speculative decoding). */
  tree?: StepTree;
  /** With tree (first 0) and sample: verify the tree on the GPU; the result's chain holds the accepted tokens and the target's next. */
  spec?: StepSpec;
}

interface SpecState {
  kernels: SpecKernels;
  /** [maxOutputs, V] f32: the draft distributions of the step's tree nodes (draftTrees); one word when !hasQ. */
  qLogits: GPUBuffer;
  hasQ: boolean;
  /** [1 + maxSeqs] vec4<u32>: which verified trees' paths to move (kv-move.wgsl). */
  moves: GPUBuffer;
  kvMoves: KvMove[];
  staging: GPUBuffer;
  movesScratch: Uint32Array<ArrayBuffer>;
  /** tree-feed.wgsl: a draft level's token ids from the nodes buffer (no readback between levels). */
  feed: GPUBuffer;
  feedScratch: Uint32Array<ArrayBuffer>;
  feedPipeline: GPUComputePipeline;
  feedBind: GPUBindGroup;
}

interface Layer {
  kCache: GPUBuffer;
  vCache: GPUBuffer;
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
  private readonly xn: GPUBuffer;
  private readonly sampler: Sampler;
  private readonly buffers: GPUBuffer[] = [];
  /** When to request each step's readback (gpu/pacing.ts); a no-op unless ctx.paceReadbacks. */
  private readonly pacer: ReadbackPacer;
  /** Steps submitted since the last readback without one of their own (prefill chunks before the last). */
  private unreadSteps = 0;
  /** Bytes of GPU memory for activations and the KV cache. */
  readonly runtimeBytes: number;
  // Host-side copies of the per-step inputs, reused so a step allocates nothing.
  private readonly idsScratch: Uint32Array<ArrayBuffer>;
  private readonly metaScratch: Uint32Array<ArrayBuffer>;
  private readonly tableScratch: Uint32Array<ArrayBuffer>;
  private readonly outScratch: Uint32Array<ArrayBuffer>;
  private readonly qkvWidthKv: number;
  /** Speculative decoding's buffers and kernels, made on first use. */
  private specState: SpecState | null = null;
  /** A separate draft model on the same device (attachDraft), sharing this runner's block ids. */
  private draftRunner: ModelRunner | null = null;

  constructor(
    private readonly ctx: GpuContext,
    readonly cfg: ModelConfig,
    private readonly w: ModelWeights,
    readonly opts: RunnerOptions,
  ) {
    const dev = ctx.device;
    const { dModel: D, ffDim: FF, numHeads: H, numKvHeads: KVH, headDim: HD, vocabSize: V } = cfg;
    const { maxBatch: B, maxSeqs: S, maxOutputs: O, blockSize: BS, numBlocks: NB } = opts;
    this.pacer = new ReadbackPacer(ctx.paceReadbacks);
    this.pool = new BlockPool(NB, BS);
    this.blocksPerSeq = Math.ceil(opts.maxContext / BS);
    const buf = (elems: number, label: string): GPUBuffer => {
      const b = storageBuffer(dev, elems * 4, label);
      this.buffers.push(b);
      return b;
    };
    this.step = new StepUniform(dev);
    this.tokenIds = buf(B, 'tokenIds'); // [B] u32
    this.tokMeta = buf(4 * B, 'tokMeta'); // [B] (RoPE position, sequence row, KV slot, attention mask) u32
    this.tables = buf(S * this.blocksPerSeq, 'blockTables'); // [S, blocksPerSeq] u32
    this.outRows = buf(O, 'outRows'); // [O] u32: token row whose logits each output row takes
    this.idsScratch = new Uint32Array(B);
    this.metaScratch = new Uint32Array(4 * B);
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
    // The step's one readback: the sampler's rows, then the verifier's (speculative decoding).
    this.staging = dev.createBuffer({ label: 'staging', size: (O * SAMPLE_OUT_WORDS + S * VERIFY_OUT_WORDS) * 4, usage: MAP_READ | COPY_DST });
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
    this.qkvWidthKv = KVH * HD;
    const partials = attentionPartials(ctx, HD);
    if (partials) this.buffers.push(partials);
    this.layers = w.layers.map((lw, i) => {
      const kCache = buf(NB * BS * KVH * HD, `kCache.${i}`); // [numBlocks * blockSize, KVH, HD] f32
      const vCache = buf(NB * BS * KVH * HD, `vCache.${i}`); // [numBlocks * blockSize, KVH, HD] f32
      const into = (out: GPUBuffer, width: number) => (part: MatmulPart) =>
        new Matmul(ctx, part.w, xn, out, s, { yStride: width, yOffset: part.col, ...(part.bias ? { bias: part.bias } : {}) });
      return {
        kCache,
        vCache,
        attnNorm: new RmsNorm(ctx, x, lw.attnNorm, xn, s, D, cfg.rmsEps),
        qkv: lw.qkv.map(into(qkv, qkvWidth)),
        ropeQkv: new RopeQkv(ctx, qkv, rope, s, kCache, vCache, H, KVH, HD, ropeCfg, paging),
        attn: new Attention(ctx, qkv, kCache, vCache, attnOut, s, H, KVH, HD, paging, qkvWidth, partials),
        o: new Matmul(ctx, lw.o, attnOut, x, s, { accumulate: true }),
        ffnNorm: new RmsNorm(ctx, x, lw.ffnNorm, xn, s, D, cfg.rmsEps),
        gateUp: lw.gateUp.map(into(gu, 2 * FF)),
        swiglu: new SwiGluSplit(ctx, gu, act, s, FF),
        down: new Matmul(ctx, lw.down, act, x, s, { accumulate: true }),
      };
    });
    this.finalNorm = new RmsNorm(ctx, x, w.outputNorm, xn, s, D, cfg.rmsEps, this.outRows);
    this.lmHead = new Matmul(ctx, w.output, xn, this.logits, s, { rowsFromOut: true });
    this.xn = xn;
    this.sampler = new Sampler(ctx, this.logits, this.sampleOut, O, V);
    this.runtimeBytes = this.buffers.reduce((a, b) => a + b.size, 0);
  }

  get numLayers(): number {
    return this.layers.length;
  }

  /**
   * Use `draft` (a smaller model with the same vocabulary and the same block layout: numBlocks,
   * blockSize) as the 'model' drafter: its draft rows become this runner's q rows.
   */
  attachDraft(draft: ModelRunner): void {
    if (this.specState) throw new Error('hearth internal error: attachDraft after the first speculative step');
    if (draft.cfg.vocabSize !== this.cfg.vocabSize || draft.opts.numBlocks !== this.opts.numBlocks || draft.opts.blockSize !== this.opts.blockSize)
      throw new Error('hearth internal error: the draft runner does not match the target');
    this.draftRunner = draft;
  }

  get hasDraftModel(): boolean {
    return this.draftRunner !== null;
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
   * With a profiler, every dispatch gets its own timestamped pass, labelled by kernel class. With
   * `layers`, only the first `layers` blocks run before the head (the self-draft).
   */
  private encodeForward(enc: GPUCommandEncoder, n: number, outs: number, prof?: Profiler, layers = this.layers.length): void {
    const ops: [label: string, run: (pass: GPUComputePassEncoder) => void][] = [['embed', (p) => this.embed.encode(p, n)]];
    for (const L of this.layers.slice(0, layers)) {
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
   * Check a step and write its inputs: token ids, per token (RoPE position, sequence row, KV slot,
   * attention mask), block tables, the output rows and their sampling settings. Returns the
   * token and output-row counts, how many rows the sampler must run over (the plain sequences'
   * rows come first) and each sequence's first output row (-1: none).
   */
  private writeStep(seqs: readonly StepSeq[]): { n: number; outs: number; sampled: number; logprobs: boolean; rowBase: number[] } {
    const { maxBatch, maxSeqs, maxContext, blockSize } = this.opts;
    if (seqs.length === 0) throw new EngineError('BAD_REQUEST', 'A step needs at least one sequence.');
    if (seqs.length > maxSeqs)
      throw new EngineError('BAD_REQUEST', `A step takes at most ${maxSeqs} sequences (got ${seqs.length}).`, { seqs: seqs.length, maxSeqs });
    const ids = this.idsScratch;
    const meta = this.metaScratch;
    const tables = this.tableScratch;
    const rows: SampleRow[] = [];
    const rowBase: number[] = [];
    const treePicks: [seqRow: number, tokenRow: number, sampling: SamplingParams, counter: number][] = [];
    let n = 0;
    let logprobs = false;
    let treeLogprobs = false;
    seqs.forEach((q, r) => {
      const len = q.tokens.length;
      const tree = q.tree;
      const ds = tree ? depths(tree.shape) : null;
      if (tree && (tree.first < 0 || tree.first + len > tree.shape.parents.length))
        throw new Error(`hearth internal error: feeding tree nodes ${tree.first}..${tree.first + len - 1} of ${tree.shape.parents.length}`);
      // Slots written: startPos .. end - 1 (a tree's nodes each take a slot after the root's).
      const end = q.startPos + (tree ? tree.first + len : len);
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
        const o = 4 * (n + i);
        if (tree) {
          const m = nodeMeta(tree.shape, q.startPos, tree.first + i, ds!);
          meta[o] = m.ropePos;
          meta[o + 2] = m.slot;
          meta[o + 3] = m.mask;
        } else {
          meta[o] = q.startPos + i;
          meta[o + 2] = q.startPos + i;
          meta[o + 3] = 0xffffffff;
        }
        meta[o + 1] = r;
      }
      const used = Math.ceil(end / blockSize);
      for (let b = 0; b < used; b++) {
        const id = q.blocks[b]!;
        if (!(Number.isInteger(id) && id >= 0 && id < this.opts.numBlocks)) throw new Error(`hearth internal error: block id ${id}`);
        tables[r * this.blocksPerSeq + b] = id;
      }
      n += len;
      rowBase.push(-1);
      if (!q.sample) return;
      // Output rows: the last token of a plain sequence, or every fed tree node (at counter + its depth).
      if (tree) for (let i = 0; i < len; i++) treePicks.push([r, n - len + i, q.sample.sampling, q.sample.counter + ds![tree.first + i]!]);
      else {
        rowBase[r] = rows.length;
        this.outScratch[rows.length] = n - 1;
        rows.push({ sampling: q.sample.sampling, counter: q.sample.counter });
      }
      if (q.sample.sampling.logprobs > 0) logprobs = true;
      if (q.sample.sampling.logprobs > 0 && tree) treeLogprobs = true;
    });
    // Tree rows after the plain ones: the sampler draws only the plain rows (a tree's tokens come
    // from the verifier), unless a tree asks for top logprobs.
    const sampled = rows.length;
    if (rows.length + treePicks.length > this.opts.maxOutputs)
      throw new EngineError('BAD_REQUEST', `A step computes at most ${this.opts.maxOutputs} output rows (got ${rows.length + treePicks.length}).`, {
        outputs: rows.length + treePicks.length,
        maxOutputs: this.opts.maxOutputs,
      });
    for (const [r, tokenRow, sampling, counter] of treePicks) {
      if (rowBase[r] === -1) rowBase[r] = rows.length;
      this.outScratch[rows.length] = tokenRow;
      rows.push({ sampling, counter });
    }
    const q = this.ctx.device.queue;
    q.writeBuffer(this.tokenIds, 0, ids, 0, n);
    q.writeBuffer(this.tokMeta, 0, meta, 0, 4 * n);
    q.writeBuffer(this.tables, 0, tables, 0, seqs.length * this.blocksPerSeq);
    if (rows.length > 0) {
      q.writeBuffer(this.outRows, 0, this.outScratch, 0, rows.length);
      this.sampler.setRows(rows);
    }
    this.step.write(n, rows.length);
    return { n, outs: rows.length, sampled: treeLogprobs ? rows.length : sampled, logprobs, rowBase };
  }

  /**
   * One forward pass over the sequences' token ranges (their KV is written to the cache), then
   * sampling for each that asked. Returns, per sequence in order, its sampled token or null.
   */
  async run(seqs: readonly StepSeq[]): Promise<(StepResult | null)[]> {
    checkDevice(this.ctx);
    if (seqs.some((q) => q.tree && q.sample && !q.spec)) throw new Error('hearth internal error: a sampled tree must be verified (StepSeq.spec)');
    const { n, outs, sampled, logprobs, rowBase } = this.writeStep(seqs);
    const enc = this.ctx.device.createCommandEncoder();
    this.encodeForward(enc, n, outs);
    if (outs === 0) {
      this.ctx.device.queue.submit([enc.finish()]);
      this.unreadSteps++;
      return seqs.map(() => null);
    }
    const pass = enc.beginComputePass();
    if (sampled > 0) this.sampler.encode(pass, sampled, logprobs);
    const verified = this.encodeVerify(pass, seqs, rowBase);
    pass.end();
    // One readback: the sampled rows, then the verified trees.
    const sampleWords = sampled * SAMPLE_OUT_WORDS;
    const verifyWords = verified * VERIFY_OUT_WORDS;
    if (sampleWords > 0) enc.copyBufferToBuffer(this.sampleOut, 0, this.staging, 0, sampleWords * 4);
    if (verifyWords > 0) enc.copyBufferToBuffer(this.specState!.kernels.outBuffer, 0, this.staging, sampleWords * 4, verifyWords * 4);
    this.ctx.device.queue.submit([enc.finish()]);
    const out = await this.stagingRead(this.staging, sampleWords + verifyWords, this.pacer.enabled ? this.paceKey(seqs, n, outs) : '');
    checkDevice(this.ctx);
    const f = new Float32Array(out.buffer);
    const rowResult = (q: StepSeq, row: number, token = out[row * SAMPLE_OUT_WORDS]!, logprob = f[row * SAMPLE_OUT_WORDS + 1]!): StepResult => {
      const o = row * SAMPLE_OUT_WORDS;
      const top: { token: number; logprob: number }[] = [];
      for (let i = 0; i < Math.min(q.sample!.sampling.logprobs, 32); i++) top.push({ token: out[o + 2 + 2 * i]!, logprob: f[o + 3 + 2 * i]! });
      return { token, logprob, topLogprobs: top };
    };
    const parsed = verified > 0 ? SpecKernels.parse(out.subarray(sampleWords), verified) : [];
    let v = 0;
    return seqs.map((q, i) => {
      if (!q.sample) return null;
      const base = rowBase[i]!;
      if (q.spec) {
        // The accepted nodes' tokens, then the target's own; each with the top logprobs of the node it was drawn at.
        const { path, tokens } = parsed[v++]!;
        const chain = tokens.map((t, d) => rowResult(q, base + (d === 0 ? 0 : path[d - 1]!), t.token, t.logprob));
        return { ...chain[chain.length - 1]!, chain, accepted: path.length };
      }
      return rowResult(q, base);
    });
  }

  /**
   * The pacing key of a step: its output rows and the power-of-two bucket of its longest context
   * (attention grows with it: a 44-token step after a 1,000-token prefix costs several times one at
   * the start), then its token count, the units an unseen key borrows a bound by (gpu/pacing.ts).
   */
  private paceKey(seqs: readonly StepSeq[], n: number, outs: number): string {
    let end = 0;
    for (const q of seqs) end = Math.max(end, q.startPos + q.tokens.length);
    return `step:${outs}:c${Math.floor(Math.log2(end + 1))}:${n}`;
  }

  /** Read `words` back from `buf` after the submission just made, whose kind `key` names for pacing ('' when the pacer is off: no string per step). */
  private async stagingRead(buf: GPUBuffer, words: number, key: string): Promise<Uint32Array> {
    const paced = this.pacer.enabled;
    const submittedAt = paced ? performance.now() : 0;
    // Steps submitted without a readback (prefill chunks before the last) run first, so this wait
    // is theirs too: it is not learned as this key's time (the estimate is still a lower bound).
    const alone = this.unreadSteps === 0;
    this.unreadSteps = 0;
    // Off, the step's readback waits on nothing else (no extra promise or microtask per token).
    if (paced) await this.pacer.beforeMap(key, submittedAt);
    await mapRead(this.ctx, buf, 0, words * 4);
    if (paced && alone) this.pacer.record(key, submittedAt);
    const out = new Uint32Array(buf.getMappedRange(0, words * 4).slice(0));
    buf.unmap();
    return out;
  }

  /**
   * The speculative buffers and kernels (draft logits, tree verification, KV moves), made on first
   * use. The draft-logits rows (maxOutputs × vocabulary floats) only when a model drafts
   * (`withQ`): prompt lookup alone does not pay for them.
   */
  private spec(withQ = false): SpecState {
    const have = this.specState;
    if (have && (have.hasQ || !withQ)) return have;
    if (have) this.dropSpec();
    const dev = this.ctx.device;
    const { maxOutputs: O, maxSeqs: S, blockSize } = this.opts;
    const hasQ = withQ || this.draftRunner !== null;
    // A draft model's rows are read where it writes them.
    const qLogits = this.draftRunner ? this.draftRunner.spec(true).qLogits : storageBuffer(dev, (hasQ ? O * this.cfg.vocabSize : 1) * 4, 'spec.qLogits');
    const kernels = new SpecKernels(this.ctx, { vocab: this.cfg.vocabSize, maxSeqs: S, maxNodes: O, pLogits: this.logits, qLogits });
    const moves = storageBuffer(dev, (1 + S) * 16, 'spec.moves');
    const kvMoves = this.layers.map(
      (L) => new KvMove(this.ctx, L.kCache, L.vCache, this.tables, kernels.outBuffer, moves, this.qkvWidthKv, blockSize, this.blocksPerSeq),
    );
    // Drafted tokens' readback (draftTrees); the verifier's output travels with the step's own.
    const staging = dev.createBuffer({ label: 'spec.staging', size: O * NODE_WORDS * 4, usage: MAP_READ | COPY_DST });
    const feed = storageBuffer(dev, this.opts.maxBatch * 4, 'spec.feed');
    const feedPipeline = this.ctx.pipelines.get('tree-feed', 'main');
    const feedBind = dev.createBindGroup({
      layout: feedPipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: kernels.nodesBuffer } },
        { binding: 1, resource: { buffer: this.tokenIds } },
        { binding: 2, resource: { buffer: feed } },
        { binding: 3, resource: { buffer: this.step.buffer } },
      ],
    });
    this.specState = {
      kernels,
      qLogits,
      hasQ,
      moves,
      kvMoves,
      staging,
      movesScratch: new Uint32Array(4 * (1 + S)),
      feed,
      feedScratch: new Uint32Array(this.opts.maxBatch),
      feedPipeline,
      feedBind,
    };
    return this.specState;
  }

  private dropSpec(): void {
    const st = this.specState;
    if (!st) return;
    st.kernels.destroy();
    for (const b of [st.moves, st.staging, st.feed, ...(this.draftRunner ? [] : [st.qLogits])]) b.destroy();
    this.specState = null;
  }

  /**
   * Verify the step's speculative trees (sequences with `spec`) and move each accepted path's KV
   * into place; returns how many were verified (their results are the verifier's rows 0 ..).
   */
  private encodeVerify(pass: GPUComputePassEncoder, seqs: readonly StepSeq[], rowBase: readonly number[]): number {
    const specs: TreeSeqSpec[] = [];
    const tableRows: number[] = [];
    seqs.forEach((q, r) => {
      if (!q.spec) return;
      if (!q.tree || q.tree.first !== 0 || !q.sample || q.tokens.length !== q.tree.shape.parents.length)
        throw new Error('hearth internal error: a verified tree must be fed whole and sampled');
      const base = rowBase[r]!;
      specs.push({
        nodes: q.tree.shape.parents.map((parent, i) => ({ token: q.tokens[i]!, parent, pRow: base + i, qRow: q.spec!.qRows[i] ?? NO_ROW })),
        method: q.spec.method,
        temperature: q.sample.sampling.temperature,
        draftTemperature: q.spec.draftTemperature,
        seed: q.sample.sampling.seed,
        counter: q.sample.counter,
      });
      tableRows.push(r);
    });
    if (specs.length === 0) return 0;
    const st = this.spec();
    st.kernels.write(specs);
    const m = st.movesScratch;
    m.fill(0, 0, 4 * (1 + specs.length));
    m[0] = specs.length;
    tableRows.forEach((r, v) => {
      m[4 * (1 + v)] = v;
      m[4 * (1 + v) + 1] = r;
      m[4 * (1 + v) + 2] = seqs[r]!.startPos;
    });
    this.ctx.device.queue.writeBuffer(st.moves, 0, m, 0, 4 * (1 + specs.length));
    st.kernels.encodeVerify(pass, specs.length);
    for (const km of st.kvMoves) km.encode(pass, specs.length);
    return specs.length;
  }

  /**
   * Draft token trees with this model (the first `layers` blocks and the head: a self-draft when
   * fewer than all): level by level, each level one forward pass over the level's nodes of every
   * job (tree attention mask), its logits kept as the nodes' draft distributions, and the
   * children drawn on the GPU (shaders/spec.wgsl `expand`, the way the verifier expects); the
   * next level's pass takes its token ids from there (tree-feed.wgsl). One readback at the end,
   * of the drawn token ids. Writes these layers' KV at the tree's slots
   * (the target's verification pass overwrites them). Draft rows: job j's node i at
   * (sum of the earlier jobs' node counts) + i.
   */
  async draftTrees(jobs: readonly DraftJob[], drafter: number | 'model' = this.layers.length): Promise<DraftedTree[]> {
    if (drafter === 'model') {
      if (!this.draftRunner) throw new Error('hearth internal error: no draft model attached');
      return this.draftRunner.draftTrees(jobs);
    }
    const layers = drafter;
    checkDevice(this.ctx);
    const lv = jobs.map((j) => levels(j.shape));
    const { carry, fed: caughtUp } = this.catchUp(jobs, lv);
    const st = this.spec(true);
    const V = this.cfg.vocabSize;
    const qOff: number[] = [];
    let total = 0;
    for (const j of jobs) {
      qOff.push(total);
      total += j.shape.parents.length;
    }
    if (total > this.opts.maxOutputs) throw new Error(`hearth internal error: ${total} draft nodes in one step, room for ${this.opts.maxOutputs}`);
    const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0, logprobs: 0 };
    // Every job's whole tree once: the roots' tokens, the structure and the draft rows; expand
    // fills in the children level by level, in place.
    st.kernels.write(
      jobs.map((job, j) => ({
        nodes: job.shape.parents.map((parent, i) => ({ token: i === 0 ? job.root : 0, parent, pRow: 0, qRow: qOff[j]! + i })),
        method: job.method,
        temperature: job.temperature,
        draftTemperature: job.draftTemperature,
        seed: job.seed,
        counter: job.counter,
      })),
    );
    const feed = st.feedScratch;
    // Tokens this call feeds the model, for the readback pacer: the catch-up fed on its own, then every level's pass.
    let fed = caughtUp;
    for (let d = 0; ; d++) {
      const active = jobs.map((_, j) => j).filter((j) => lv[j]!.length > d + 1);
      if (active.length === 0) break;
      // Level 0 feeds the roots (known); deeper levels take their tokens from the nodes buffer on
      // the GPU (tree-feed.wgsl), so the levels follow one another without a readback.
      const { n, outs, rowBase } = this.writeStep(
        active.map((j): StepSeq => {
          const job = jobs[j]!;
          // Level 0 of a draft model that is behind: its missing tokens, then the root, as one
          // run of positions (the root alone is a tree of one node, which a run feeds alike).
          const c = d === 0 ? carry[j]! : [];
          if (c.length > 0)
            return { blocks: job.blocks, tokens: [...c, job.root], startPos: job.startPos - c.length, sample: { sampling: greedy, counter: 0 } };
          return {
            blocks: job.blocks,
            tokens: lv[j]![d]!.map((i) => (i === 0 ? job.root : 0)),
            startPos: job.startPos,
            tree: { shape: job.shape, first: lv[j]![d]![0]! },
            sample: { sampling: greedy, counter: 0 },
          };
        }),
      );
      fed += n;
      const enc = this.ctx.device.createCommandEncoder();
      if (d > 0) {
        let k = 0;
        for (const j of active) for (const i of lv[j]![d]!) feed[k++] = st.kernels.nodeBase(j) + i;
        this.ctx.device.queue.writeBuffer(st.feed, 0, feed, 0, k);
        const fp = enc.beginComputePass();
        fp.setPipeline(st.feedPipeline);
        fp.setBindGroup(0, st.feedBind);
        fp.dispatchWorkgroups(Math.ceil(n / 64));
        fp.end();
      }
      this.encodeForward(enc, n, outs, undefined, layers);
      active.forEach((j, a) => {
        const first = lv[j]![d]![0]!;
        enc.copyBufferToBuffer(this.logits, rowBase[a]! * V * 4, st.qLogits, (qOff[j]! + first) * V * 4, lv[j]![d]!.length * V * 4);
      });
      const expandJobs = active.flatMap((j) => lv[j]![d]!.map((node) => ({ seq: j, node })));
      st.kernels.writeJobs(expandJobs);
      const pass = enc.beginComputePass();
      st.kernels.encodeExpand(pass, expandJobs.length);
      pass.end();
      this.ctx.device.queue.submit([enc.finish()]);
    }
    // One readback: every drawn token.
    const nodeWords = total * NODE_WORDS;
    const enc = this.ctx.device.createCommandEncoder();
    enc.copyBufferToBuffer(st.kernels.nodesBuffer, 0, st.staging, 0, nodeWords * 4);
    this.ctx.device.queue.submit([enc.finish()]);
    // Paced by the tokens fed (the pacer's units): the first call after a prefill catches up on the
    // whole prompt, and learned under the tree's size alone it made the next calls wait for that
    // long (draft steps of ~100 ms took 300-700 ms for a dozen steps after each prompt).
    const words = await this.stagingRead(st.staging, nodeWords, `draft:${layers}:${total}:${fed}`);
    checkDevice(this.ctx);
    const tokens = jobs.map((j, k) => j.shape.parents.map((_, i) => (i === 0 ? j.root : words[(st.kernels.nodeBase(k) + i) * NODE_WORDS]!)));
    return jobs.map((j, k) => ({ tokens: tokens[k]!, qRows: j.shape.parents.map((_, i) => qOff[k]! + i) }));
  }

  /**
   * The jobs' catch-up tokens (a draft model's missing KV). The last of them ride in the tree's
   * first level, ahead of the root: one pass instead of two, which on a GPU is one pass of
   * dispatches fewer and on a CPU-backed adapter one fixed cost fewer (a 3-token catch-up pass
   * took ~40 ms on SwiftShader beside ~18 ms a level). Returns those per job (carry); what does
   * not fit in that level's maxBatch tokens, and a job whose tree is its root alone, is fed here
   * first (KV only), in passes of at most maxBatch tokens and maxSeqs sequences (fed: how many).
   */
  private catchUp(jobs: readonly DraftJob[], lv: readonly number[][][]): { carry: (readonly number[])[]; fed: number } {
    const { maxBatch, maxSeqs } = this.opts;
    let room = maxBatch - jobs.filter((_, j) => lv[j]!.length > 1).length;
    const carry = jobs.map((j, k) => {
      const tokens = j.catchUp?.tokens ?? [];
      const take = lv[k]!.length > 1 ? Math.min(tokens.length, room) : 0;
      room -= take;
      return tokens.slice(tokens.length - take);
    });
    const left = jobs
      .map((j, k) => ({
        from: j.catchUp?.from ?? 0,
        blocks: j.blocks,
        tokens: (j.catchUp?.tokens ?? []).slice(0, (j.catchUp?.tokens.length ?? 0) - carry[k]!.length),
        done: 0,
      }))
      .filter((x) => x.tokens.length > 0);
    let fed = 0;
    while (left.some((x) => x.done < x.tokens.length)) {
      const seqs: StepSeq[] = [];
      let budget = maxBatch;
      for (const x of left) {
        const n = Math.min(x.tokens.length - x.done, budget);
        if (n <= 0 || seqs.length === maxSeqs) continue;
        seqs.push({ blocks: x.blocks, tokens: x.tokens.slice(x.done, x.done + n), startPos: x.from + x.done });
        x.done += n;
        budget -= n;
      }
      const { n } = this.writeStep(seqs);
      fed += n;
      const enc = this.ctx.device.createCommandEncoder();
      this.encodeForward(enc, n, 0);
      this.ctx.device.queue.submit([enc.finish()]);
    }
    return { carry, fed };
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
    await mapRead(this.ctx, staging);
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
    this.dropSpec();
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
