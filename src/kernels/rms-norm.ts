// Host side of shaders/rms-norm.wgsl. lastOnly normalizes just the step's last token into row 0.

import type { GpuContext } from '../gpu/device.js';
import { uniformFrom } from '../gpu/buffers.js';

export class RmsNorm {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
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
    this.pipeline = ctx.pipelines.get('rms-norm', 'main');
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
    pass.dispatchWorkgroups(this.lastOnly ? 1 : numTokens);
  }
}
