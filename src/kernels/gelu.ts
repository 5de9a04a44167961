// Host side of shaders/gelu.wgsl: GELU (llama.cpp's tanh form) in place over [numTokens, width].
// The step uniform's token count bounds the rows, so one instance serves every sequence length.

import type { GpuContext } from '../gpu/device.js';
import { grid, uniformFrom } from '../gpu/buffers.js';

export class Gelu {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  constructor(
    ctx: GpuContext,
    y: GPUBuffer,
    step: GPUBuffer,
    private readonly width: number,
  ) {
    const params = uniformFrom(ctx.device, [width, 0, 0, 0], 'gelu.params');
    this.pipeline = ctx.pipelines.get('gelu', 'main');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: y } },
        { binding: 2, resource: { buffer: params } },
        { binding: 3, resource: { buffer: step } },
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    const [gx, gy] = grid(Math.ceil((numTokens * this.width) / 64));
    pass.dispatchWorkgroups(gx, gy);
  }
}
