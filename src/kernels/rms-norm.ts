// Host side of shaders/rms-norm.wgsl (workgroup per row, or thread per row when barrier-free).
// lastOnly normalizes just the step's last token into row 0.

import type { GpuContext } from '../gpu/device.js';
import { uniformFrom } from '../gpu/buffers.js';

export class RmsNorm {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  private readonly barrierFree: boolean;
  constructor(
    ctx: GpuContext,
    x: GPUBuffer,
    weight: GPUBuffer,
    y: GPUBuffer,
    step: GPUBuffer,
    D: number,
    eps: number,
    private readonly lastOnly = false,
  ) {
    const params = uniformFrom(ctx.device, [D, { f: eps }, lastOnly ? 1 : 0, 0], 'rms-norm.params');
    this.barrierFree = ctx.tuning.barrierFree;
    this.pipeline = ctx.pipelines.get('rms-norm', this.barrierFree ? 'rows' : 'main');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: x } },
        { binding: 1, resource: { buffer: weight } },
        { binding: 2, resource: { buffer: y } },
        { binding: 3, resource: { buffer: params } },
        { binding: 4, resource: { buffer: step } },
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    if (this.lastOnly) pass.dispatchWorkgroups(1);
    else pass.dispatchWorkgroups(this.barrierFree ? Math.ceil(numTokens / 64) : numTokens);
  }
}
