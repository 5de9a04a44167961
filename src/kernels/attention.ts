// Host side of shaders/attention.wgsl: causal GQA attention of the step's tokens over the paged
// cache. The cache must already hold the step's own K/V rows (see model/forward.ts).

import type { GpuContext } from '../gpu/device.js';
import { grid, uniformFrom } from '../gpu/buffers.js';

/** Where a step's tokens sit in the paged KV cache (buffers written per step by model/forward.ts). */
export interface KvPaging {
  /** [tokens] vec4<u32>: (RoPE position, sequence row of `tables`, KV slot position, visibility mask of the 32 keys up to the slot). */
  tokMeta: GPUBuffer;
  /** [sequence rows, blocksPerSeq] u32 block ids. */
  tables: GPUBuffer;
  /** Tokens per block, a power of two. */
  blockSize: number;
  blocksPerSeq: number;
}

export function blockShift(blockSize: number): number {
  const s = Math.log2(blockSize);
  if (!Number.isInteger(s) || s < 0 || s > 16) throw new Error(`hearth internal error: block size ${blockSize} is not a power of two`);
  return s;
}

/** Split-K (flash decoding) bounds: at most this many (token, head, split) partials per step... */
const MAX_PARTS = 256;
/** ...and at most this many splits of one (token, head) pair. */
const MAX_SPLITS = 16;

/**
 * Splits per (token, head) pair on GPUs: a decode step has only numHeads pairs, too few
 * workgroups to fill a GPU, so each pair's key chunks are dealt over S workgroups and merged.
 * Steps with 128 or more pairs run unsplit.
 */
export function attentionSplits(numTokens: number, numHeads: number): number {
  const pairs = numTokens * numHeads;
  if (pairs >= 128) return 1;
  return Math.max(1, Math.min(MAX_SPLITS, Math.floor(MAX_PARTS / pairs)));
}

/**
 * The split-K partials (2 floats of softmax state for each of MAX_PARTS, then their output rows),
 * or null on CPU-backed adapters, which never split. The layers of a forward pass run one after
 * another, so they share one buffer (the runner makes it, and destroys it with the model).
 */
export function attentionPartials(ctx: GpuContext, headDim: number): GPUBuffer | null {
  if (ctx.tuning.barrierFree) return null;
  return ctx.device.createBuffer({ label: 'attention.partials', size: 4 * (2 * MAX_PARTS + MAX_PARTS * headDim), usage: GPUBufferUsage.STORAGE });
}

export class Attention {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  private readonly combine: { pipeline: GPUComputePipeline; bg: GPUBindGroup } | null = null;
  private readonly barrierFree: boolean;
  constructor(
    ctx: GpuContext,
    q: GPUBuffer,
    kCache: GPUBuffer,
    vCache: GPUBuffer,
    out: GPUBuffer,
    step: GPUBuffer,
    private readonly numHeads: number,
    numKvHeads: number,
    headDim: number,
    paging: KvPaging,
    /** Row stride of Q in elements (default numHeads * headDim; a fused qkv row is wider). */
    qStride = 0,
    /** attentionPartials() of this headDim, shared by the layers; made here when absent (kernel tests). */
    partials?: GPUBuffer | null,
  ) {
    const params = uniformFrom(
      ctx.device,
      [numHeads, numKvHeads, headDim, { f: 1 / Math.sqrt(headDim) }, qStride, blockShift(paging.blockSize), paging.blocksPerSeq, 0],
      'attention.params',
    );
    this.barrierFree = ctx.tuning.barrierFree;
    this.pipeline = ctx.pipelines.get('attention', this.barrierFree ? 'attend_rows' : 'main');
    const part = partials === undefined ? attentionPartials(ctx, headDim) : partials;
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: q } },
        { binding: 1, resource: { buffer: kCache } },
        { binding: 2, resource: { buffer: vCache } },
        { binding: 3, resource: { buffer: out } },
        { binding: 4, resource: { buffer: params } },
        { binding: 5, resource: { buffer: step } },
        { binding: 6, resource: { buffer: paging.tokMeta } },
        { binding: 7, resource: { buffer: paging.tables } },
        ...(part
          ? [
              { binding: 8, resource: { buffer: kCache } },
              { binding: 9, resource: { buffer: part } },
            ]
          : []),
      ],
    });
    if (part) {
      const pipeline = ctx.pipelines.get('attention', 'combine');
      const bg = ctx.device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          { binding: 3, resource: { buffer: out } },
          { binding: 4, resource: { buffer: params } },
          { binding: 5, resource: { buffer: step } },
          { binding: 9, resource: { buffer: part } },
        ],
      });
      this.combine = { pipeline, bg };
    }
  }
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    if (this.barrierFree) {
      // A thread per (quad of 4 tokens, head), 4 threads a workgroup (ROWS_WG in attention.wgsl).
      const [gx, gy] = grid(Math.ceil((Math.ceil(numTokens / 4) * this.numHeads) / 4));
      pass.dispatchWorkgroups(gx, gy);
      return;
    }
    const splits = attentionSplits(numTokens, this.numHeads);
    pass.dispatchWorkgroups(this.numHeads, numTokens, splits);
    if (splits > 1 && this.combine) {
      pass.setPipeline(this.combine.pipeline);
      pass.setBindGroup(0, this.combine.bg);
      pass.dispatchWorkgroups(this.numHeads, numTokens, splits);
    }
  }
}
