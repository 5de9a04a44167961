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

export class Attention {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
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
  ) {
    const params = uniformFrom(
      ctx.device,
      [numHeads, numKvHeads, headDim, { f: 1 / Math.sqrt(headDim) }, qStride, blockShift(paging.blockSize), paging.blocksPerSeq, 0],
      'attention.params',
    );
    this.barrierFree = ctx.tuning.barrierFree;
    this.pipeline = ctx.pipelines.get('attention', this.barrierFree ? 'attend_rows' : 'main');
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
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    if (this.barrierFree) {
      const [gx, gy] = grid(Math.ceil((numTokens * this.numHeads) / 4)); // ROWS_WG in attention.wgsl
      pass.dispatchWorkgroups(gx, gy);
    } else pass.dispatchWorkgroups(this.numHeads, numTokens);
  }
}
