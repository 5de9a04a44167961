// Host side of shaders/spec.wgsl: token trees per sequence, the expand jobs that draw children from
// the draft's logits, and the verifier that emits the accepted path plus a bonus token on the GPU.
// A new verifier adds its name to VerifyMethod and METHOD_CODE, a branch in the shader and in verify-ref.ts.

import type { GpuContext } from '../gpu/device.js';
import { COPY_DST, grid, STORAGE, storageBuffer } from '../gpu/buffers.js';
import { MAX_TREE_DEPTH, MAX_TREE_NODES } from './tree.js';
import { BARRIER_FREE_ROW_THREADS } from '../kernels/sample.js';

/**
 * How drafts are drawn and verified: greedy (argmax), recursive rejection sampling with i.i.d. drafts
 * (`rrs`), without replacement (`rrs-wo`), or SpecHub (two drafts per node around the draft's argmax).
 */
export type VerifyMethod = 'greedy' | 'rrs' | 'rrs-wo' | 'spechub';
export const METHOD_CODE: Record<VerifyMethod, number> = { greedy: 0, rrs: 1, 'rrs-wo': 2, spechub: 3 };

export { MAX_TREE_DEPTH, MAX_TREE_NODES };
/** qRow of a node whose children are deterministic drafts (point masses), e.g. prompt-lookup n-grams. */
export const NO_ROW = 0xffffffff;
/** Words per sequence in the verify output. */
export const VERIFY_OUT_WORDS = 32;
// Layout of one sequence's verify output (u32 words at s * VERIFY_OUT_WORDS):
//  [0] k = accepted draft tokens (0..MAX_TREE_DEPTH)
//  [1 .. 1+MAX_TREE_DEPTH) path: local node indices of the accepted nodes, depth 1..k (unused words 0)
//  [1+MAX_TREE_DEPTH + 2*i], [.. + 1] for i in 0..k: emitted token i and its logprob (f32 bits); i < k are
//  the accepted nodes' tokens, i == k is the bonus token. (1 + 8 + 18 = 27 words used; the rest 0.)
const OUT_TOKENS = 1 + MAX_TREE_DEPTH;

/** Words per node in the nodes buffer (struct Node in spec.wgsl): token, parent, pRow, qRow, firstChild, numChildren, depth, pad. */
export const NODE_WORDS = 8;
/** Words per sequence in the parameter buffer (struct Seq in spec.wgsl). */
const SEQ_WORDS = 8;

export interface TreeNodeSpec {
  token: number;
  /** Local index of the parent; -1 for the root. */
  parent: number;
  /** Row of the target logits with the target's logits after this node. */
  pRow: number;
  /** Row of the draft logits this node's children were drawn from; NO_ROW: point-mass children. */
  qRow: number;
}

export interface TreeSeqSpec {
  /** Local indices 0..n-1, root first, parent[i] < i, each node's children contiguous (BFS order). */
  nodes: TreeNodeSpec[];
  method: VerifyMethod;
  /** Target temperature; <= 0: greedy. */
  temperature: number;
  /** Draft temperature; <= 0: greedy drafts, verified as point masses. */
  draftTemperature: number;
  seed: number;
  /** Index in the output of the first token this step generates (the sampler's counter). */
  counter: number;
}

export interface VerifyResult {
  /** Local node indices of the accepted nodes, depth 1..k. */
  path: number[];
  /** path.length + 1 tokens: the accepted nodes' tokens, then the bonus token; logprob = untempered target log-softmax. */
  tokens: { token: number; logprob: number }[];
}

/** Layout of a validated tree (the shader's view): each node's first child, child count and depth. */
export interface TreeLayout {
  firstChild: number[];
  numChildren: number[];
  depth: number[];
}

/** Checks a tree's invariants and returns its shape; throws on a malformed tree. */
export function treeLayout(nodes: readonly TreeNodeSpec[]): TreeLayout {
  const n = nodes.length;
  const bad = (why: string): Error => new Error(`hearth internal error: bad token tree (${n} nodes): ${why}`);
  if (n < 1 || n > MAX_TREE_NODES) throw bad(`a tree has 1..${MAX_TREE_NODES} nodes`);
  if (nodes[0]!.parent !== -1) throw bad('node 0 must be the root (parent -1)');
  const firstChild = new Array<number>(n).fill(0);
  const numChildren = new Array<number>(n).fill(0);
  const depth = new Array<number>(n).fill(0);
  for (let i = 1; i < n; i++) {
    const p = nodes[i]!.parent;
    if (!Number.isInteger(p) || p < 0 || p >= i) throw bad(`node ${i} has parent ${p}; parents come before their children`);
    // Non-decreasing parents = each node's children contiguous, in BFS order.
    if (i > 1 && p < nodes[i - 1]!.parent)
      throw bad(`node ${i}'s parent ${p} comes after node ${i - 1}'s ${nodes[i - 1]!.parent}: children must be contiguous`);
    if (numChildren[p] === 0) firstChild[p] = i;
    numChildren[p]!++;
    depth[i] = depth[p]! + 1;
    if (depth[i]! > MAX_TREE_DEPTH) throw bad(`node ${i} is at depth ${depth[i]}, deeper than ${MAX_TREE_DEPTH}`);
  }
  return { firstChild, numChildren, depth };
}

/**
 * The expand and verify kernels over one step's token trees. Typical step:
 * `write(seqs)`, then per tree level `writeJobs` + `encodeExpand` (draft children; read their tokens
 * from `nodesBuffer` at `(nodeBase(seq) + node) * NODE_WORDS`), the target's forward pass over the tree,
 * `write(seqs)` again with the drafted tokens and their rows, then `encodeVerify` and one readback of
 * `outBuffer` (`SpecKernels.parse`).
 *
 * @example
 * // from test/gpu/spec-verify.test.ts
 * const k = new SpecKernels(ctx, { vocab: V, maxSeqs: N, maxNodes: N * 7, pLogits, qLogits });
 * k.write(seqs);
 * k.writeJobs(seqs.map((_, seq) => ({ seq, node: 0 })));
 * // pass: k.encodeExpand(pass, seqs.length); ... later k.encodeVerify(pass, seqs.length)
 * const results = SpecKernels.parse(await readU32(ctx, k.outBuffer, N * VERIFY_OUT_WORDS), N);
 */
export class SpecKernels {
  readonly nodesBuffer: GPUBuffer; // [maxNodes, NODE_WORDS] u32
  readonly outBuffer: GPUBuffer; // [maxSeqs, VERIFY_OUT_WORDS] u32
  private readonly seqBuffer: GPUBuffer; // [maxSeqs, SEQ_WORDS] u32/f32
  private readonly jobsBuffer: GPUBuffer; // [maxNodes, 2] u32
  private readonly device: GPUDevice;
  private readonly pExpand: GPUComputePipeline;
  private readonly pVerify: GPUComputePipeline;
  private readonly bgExpand: GPUBindGroup;
  private readonly bgVerify: GPUBindGroup;
  private readonly vocab: number;
  private readonly maxSeqs: number;
  private readonly maxNodes: number;
  private readonly pRows: number;
  private readonly qRows: number;
  private readonly bases: number[] = [];
  private readonly sizes: number[] = [];
  /** Upload scratch, sized for the most nodes, sequences and jobs: a step allocates nothing here. */
  private readonly nodeWords: Uint32Array<ArrayBuffer>;
  private readonly seqWords: Uint32Array<ArrayBuffer>;
  private readonly seqFloats: Float32Array<ArrayBuffer>;
  private readonly jobWords: Uint32Array<ArrayBuffer>;

  /** Threads per workgroup (override WG in spec.wgsl). */
  readonly workgroupSize: number;

  /**
   * `workgroupSize`: threads per workgroup, a power of two <= 256; default 256 for vocabularies of
   * 4096 and more, fewer for tiny ones (about 16 tokens per thread), at most 4 on CPU-backed adapters.
   */
  constructor(ctx: GpuContext, opts: { vocab: number; maxSeqs: number; maxNodes: number; pLogits: GPUBuffer; qLogits: GPUBuffer; workgroupSize?: number }) {
    this.device = ctx.device;
    this.vocab = opts.vocab;
    this.maxSeqs = opts.maxSeqs;
    this.maxNodes = opts.maxNodes;
    this.pRows = Math.floor(opts.pLogits.size / (4 * opts.vocab));
    this.qRows = Math.floor(opts.qLogits.size / (4 * opts.vocab));
    this.nodesBuffer = storageBuffer(ctx.device, opts.maxNodes * NODE_WORDS * 4, 'spec.nodes');
    this.outBuffer = storageBuffer(ctx.device, opts.maxSeqs * VERIFY_OUT_WORDS * 4, 'spec.out');
    this.seqBuffer = ctx.device.createBuffer({ label: 'spec.seqs', size: Math.max(16, opts.maxSeqs * SEQ_WORDS * 4), usage: STORAGE | COPY_DST });
    this.jobsBuffer = ctx.device.createBuffer({ label: 'spec.jobs', size: Math.max(16, opts.maxNodes * 2 * 4), usage: STORAGE | COPY_DST });
    this.nodeWords = new Uint32Array(opts.maxNodes * NODE_WORDS);
    this.seqWords = new Uint32Array(opts.maxSeqs * SEQ_WORDS);
    this.seqFloats = new Float32Array(this.seqWords.buffer);
    this.jobWords = new Uint32Array(opts.maxNodes * 2);
    const byVocab = Math.min(256, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(opts.vocab / 16)))));
    const wg = opts.workgroupSize ?? (ctx.tuning.barrierFree ? Math.min(BARRIER_FREE_ROW_THREADS, byVocab) : byVocab);
    if (!(wg >= 1 && wg <= 256 && (wg & (wg - 1)) === 0)) throw new Error(`hearth internal error: spec workgroup size ${wg}, want a power of two <= 256`);
    this.workgroupSize = wg;
    this.pExpand = ctx.pipelines.get('spec', 'expand', { WG: wg });
    this.pVerify = ctx.pipelines.get('spec', 'verify', { WG: wg });
    this.bgExpand = ctx.device.createBindGroup({
      label: 'spec.expand',
      layout: this.pExpand.getBindGroupLayout(0),
      // binding 0 too: the shader's shared draw() reaches verify's residuals, so the layout names the target logits.
      entries: [
        { binding: 0, resource: { buffer: opts.pLogits } },
        { binding: 1, resource: { buffer: opts.qLogits } },
        { binding: 2, resource: { buffer: this.nodesBuffer } },
        { binding: 3, resource: { buffer: this.seqBuffer } },
        { binding: 4, resource: { buffer: this.jobsBuffer } },
      ],
    });
    this.bgVerify = ctx.device.createBindGroup({
      label: 'spec.verify',
      layout: this.pVerify.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: opts.pLogits } },
        { binding: 1, resource: { buffer: opts.qLogits } },
        { binding: 3, resource: { buffer: this.seqBuffer } },
        { binding: 5, resource: { buffer: this.outBuffer } },
        { binding: 6, resource: { buffer: this.nodesBuffer } },
      ],
    });
  }

  /** Write every sequence's tree (nodes laid out sequence after sequence) and parameters; throws on a malformed tree. */
  write(seqs: readonly TreeSeqSpec[]): void {
    if (seqs.length > this.maxSeqs) throw new Error(`hearth internal error: ${seqs.length} speculative sequences, room for ${this.maxSeqs}`);
    const total = seqs.reduce((a, s) => a + s.nodes.length, 0);
    if (total > this.maxNodes) throw new Error(`hearth internal error: ${total} tree nodes in the step, room for ${this.maxNodes}`);
    const nodeWords = this.nodeWords;
    const su = this.seqWords;
    const sf = this.seqFloats;
    this.bases.length = 0;
    this.sizes.length = 0;
    let base = 0;
    seqs.forEach((s, si) => {
      const shape = treeLayout(s.nodes);
      s.nodes.forEach((nd, i) => {
        if (!(nd.pRow >= 0 && nd.pRow < this.pRows))
          throw new Error(`hearth internal error: sequence ${si} node ${i}: pRow ${nd.pRow}, the target logits have ${this.pRows} rows`);
        if (nd.qRow !== NO_ROW && !(nd.qRow >= 0 && nd.qRow < this.qRows))
          throw new Error(`hearth internal error: sequence ${si} node ${i}: qRow ${nd.qRow}, the draft logits have ${this.qRows} rows`);
        const o = (base + i) * NODE_WORDS;
        nodeWords[o] = nd.token >>> 0;
        nodeWords[o + 1] = nd.parent < 0 ? NO_ROW : nd.parent;
        nodeWords[o + 2] = nd.pRow;
        nodeWords[o + 3] = nd.qRow >>> 0;
        nodeWords[o + 4] = shape.firstChild[i]!;
        nodeWords[o + 5] = shape.numChildren[i]!;
        nodeWords[o + 6] = shape.depth[i]!;
        nodeWords[o + 7] = 0;
      });
      const o = si * SEQ_WORDS;
      su[o] = base;
      su[o + 1] = s.nodes.length;
      su[o + 2] = METHOD_CODE[s.method];
      su[o + 3] = this.vocab;
      sf[o + 4] = s.temperature;
      sf[o + 5] = s.draftTemperature;
      su[o + 6] = s.seed >>> 0;
      su[o + 7] = s.counter >>> 0;
      this.bases.push(base);
      this.sizes.push(s.nodes.length);
      base += s.nodes.length;
    });
    if (total > 0) this.device.queue.writeBuffer(this.nodesBuffer, 0, nodeWords, 0, total * NODE_WORDS);
    if (seqs.length > 0) this.device.queue.writeBuffer(this.seqBuffer, 0, su, 0, seqs.length * SEQ_WORDS);
  }

  /** Write the expand jobs: (sequence index, local node), for nodes of the last write() whose qRow is a row. */
  writeJobs(jobs: readonly { seq: number; node: number }[]): void {
    if (jobs.length > this.maxNodes) throw new Error(`hearth internal error: ${jobs.length} expand jobs, room for ${this.maxNodes}`);
    const w = this.jobWords;
    jobs.forEach(({ seq, node }, i) => {
      const n = this.sizes[seq];
      if (n === undefined || !(node >= 0 && node < n)) throw new Error(`hearth internal error: expand job (${seq}, ${node}) outside the trees written`);
      w[2 * i] = seq;
      w[2 * i + 1] = node;
    });
    if (jobs.length > 0) this.device.queue.writeBuffer(this.jobsBuffer, 0, w, 0, jobs.length * 2);
  }

  /** Draw the children of the written jobs' nodes (one workgroup per job). */
  encodeExpand(pass: GPUComputePassEncoder, numJobs: number): void {
    if (numJobs <= 0) return;
    pass.setPipeline(this.pExpand);
    pass.setBindGroup(0, this.bgExpand);
    const [x, y] = grid(numJobs);
    if (x * y !== numJobs) throw new Error(`hearth internal error: ${numJobs} expand jobs do not fill a ${x} x ${y} grid`);
    pass.dispatchWorkgroups(x, y);
  }

  /** Verify sequences 0 .. numSeqs-1 of the last write() (one workgroup each) into outBuffer. */
  encodeVerify(pass: GPUComputePassEncoder, numSeqs: number): void {
    if (numSeqs <= 0) return;
    pass.setPipeline(this.pVerify);
    pass.setBindGroup(0, this.bgVerify);
    const [x, y] = grid(numSeqs);
    if (x * y !== numSeqs) throw new Error(`hearth internal error: ${numSeqs} sequences do not fill a ${x} x ${y} grid`);
    pass.dispatchWorkgroups(x, y);
  }

  destroy(): void {
    for (const b of [this.nodesBuffer, this.outBuffer, this.seqBuffer, this.jobsBuffer]) b.destroy();
  }

  /** Global index of sequence `seq`'s root in the nodes buffer (node g's token is word g * NODE_WORDS). */
  nodeBase(seq: number): number {
    const b = this.bases[seq];
    if (b === undefined) throw new Error(`hearth internal error: sequence ${seq} was not written`);
    return b;
  }

  /** Parse a copy of outBuffer (numSeqs * VERIFY_OUT_WORDS words). */
  static parse(words: Uint32Array, numSeqs: number): VerifyResult[] {
    const f = new Float32Array(words.buffer, words.byteOffset, words.length);
    const res: VerifyResult[] = [];
    for (let s = 0; s < numSeqs; s++) {
      const o = s * VERIFY_OUT_WORDS;
      const k = Math.min(words[o]!, MAX_TREE_DEPTH);
      const path = Array.from(words.subarray(o + 1, o + 1 + k));
      const tokens = [];
      for (let i = 0; i <= k; i++) tokens.push({ token: words[o + OUT_TOKENS + 2 * i]!, logprob: f[o + OUT_TOKENS + 2 * i + 1]! });
      res.push({ path, tokens });
    }
    return res;
  }
}
