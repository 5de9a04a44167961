// Host side of shaders/pool.wgsl: one sequence's hidden states → one L2-normalized sentence vector.
// A new pooling mode adds a `mode` value in the shader and here.

import type { GpuContext } from '../gpu/device.js';
import { uniformFrom } from '../gpu/buffers.js';

/** How the token vectors become one: mean over all tokens, the first ([CLS]) or the last. */
export type PoolMode = 'mean' | 'cls' | 'last';
const MODE: Record<PoolMode, number> = { mean: 0, cls: 1, last: 2 };

export class Pool {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  constructor(ctx: GpuContext, x: GPUBuffer, y: GPUBuffer, step: GPUBuffer, D: number, mode: PoolMode) {
    const params = uniformFrom(ctx.device, [D, MODE[mode], 0, 0], 'pool.params');
    this.pipeline = ctx.pipelines.get('pool', 'main');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: x } },
        { binding: 1, resource: { buffer: y } },
        { binding: 2, resource: { buffer: params } },
        { binding: 3, resource: { buffer: step } },
      ],
    });
  }
  encode(pass: GPUComputePassEncoder): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    pass.dispatchWorkgroups(1);
  }
}
