// Host side of shaders/rms-norm.wgsl (workgroup per row, or thread per row when barrier-free).
// With `gather` (a buffer of row indices), rows gather[r] go to rows r < step.numOut.

import type { GpuContext } from '../gpu/device.js';
import { dummyStorage, uniformFrom } from '../gpu/buffers.js';

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
    private readonly gather?: GPUBuffer,
  ) {
    const params = uniformFrom(ctx.device, [D, { f: eps }, gather ? 1 : 0, 0], 'rms-norm.params');
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
        { binding: 5, resource: { buffer: gather ?? dummyStorage(ctx.device) } },
      ],
    });
  }
  /** `rows`: the step's token count, or its output row count in gather mode. */
  encode(pass: GPUComputePassEncoder, rows: number): void {
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.bg);
    pass.dispatchWorkgroups(this.barrierFree ? Math.ceil(rows / 64) : rows);
  }
}
