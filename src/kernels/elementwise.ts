// Host side of the elementwise shaders: shaders/swiglu.wgsl and shaders/add.wgsl.
// Both read the step's token count and cover [numTokens, width] elements.

import type { GpuContext } from '../gpu/device.js';
import { grid, uniformFrom } from '../gpu/buffers.js';
import type { ShaderName } from '../gpu/shader-sources.js';

class Elementwise {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  constructor(
    ctx: GpuContext,
    shader: ShaderName,
    out: GPUBuffer,
    inp: GPUBuffer,
    step: GPUBuffer,
    private readonly width: number,
  ) {
    const params = uniformFrom(ctx.device, [width, 0, 0, 0], `${shader}.params`);
    this.pipeline = ctx.pipelines.get(shader, 'main');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: out } },
        { binding: 1, resource: { buffer: inp } },
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

/** gate = silu(gate) * up over [numTokens, FF]. */
export class SwiGlu extends Elementwise {
  constructor(ctx: GpuContext, gate: GPUBuffer, up: GPUBuffer, step: GPUBuffer, FF: number) {
    super(ctx, 'swiglu', gate, up, step, FF);
  }
}

/** y += a over [numTokens, D]. */
export class Add extends Elementwise {
  constructor(ctx: GpuContext, y: GPUBuffer, a: GPUBuffer, step: GPUBuffer, D: number) {
    super(ctx, 'add', y, a, step, D);
  }
}

/** out[m, i] = silu(gu[m, i]) * gu[m, FF + i] for a [gate | up] row per token. */
export class SwiGluSplit {
  private readonly bg: GPUBindGroup;
  private readonly pipeline: GPUComputePipeline;
  constructor(
    ctx: GpuContext,
    gu: GPUBuffer,
    out: GPUBuffer,
    step: GPUBuffer,
    private readonly FF: number,
  ) {
    const params = uniformFrom(ctx.device, [FF, 0, 0, 0], 'swiglu-split.params');
    this.pipeline = ctx.pipelines.get('swiglu', 'swiglu_split');
    this.bg = ctx.device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 2, resource: { buffer: params } },
        { binding: 3, resource: { buffer: step } },
        { binding: 4, resource: { buffer: gu } },
        { binding: 5, resource: { buffer: out } },
      ],
    });
  }
  encode(pass: GPUComputePassEncoder, numTokens: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    const [gx, gy] = grid(Math.ceil((numTokens * this.FF) / 64));
    pass.dispatchWorkgroups(gx, gy);
  }
}
