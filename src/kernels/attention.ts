// Host side of shaders/attention.wgsl: causal GQA attention of the step's tokens over the cache.
// The cache must already hold the step's own K/V rows (see model/forward.ts).

import type { GpuContext } from '../gpu/device.js';
import { grid, uniformFrom } from '../gpu/buffers.js';

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
    /** Row stride of Q in elements (default numHeads * headDim; a fused qkv row is wider). */
    qStride = 0,
  ) {
    const params = uniformFrom(ctx.device, [numHeads, numKvHeads, headDim, { f: 1 / Math.sqrt(headDim) }, qStride, 0, 0, 0], 'attention.params');
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
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    if (this.barrierFree) {
      const [gx, gy] = grid(Math.ceil((numTokens * this.numHeads) / 64));
      pass.dispatchWorkgroups(gx, gy);
    } else pass.dispatchWorkgroups(this.numHeads, numTokens);
  }
}
